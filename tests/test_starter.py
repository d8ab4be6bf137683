"""The starter model pip installs with llmcli: a first run answers with it when the Hub
cannot be reached, and `-m starter`, `list` and `show` know it. The Hub here is an
address that refuses connections (the suite's default)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from clihelpers import run_cli
from hubserver import HubServer, standard_repos

from llmcli.aliases import DEFAULT_MODEL
from llmcli.errors import ExitCode
from llmcli.starter import starter_path


def test_a_first_run_without_the_hub_answers_with_the_starter() -> None:
    proc = run_cli("run", "--temperature", "0", "-n", "8", "Say hi")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "starter model" in lines[0] and f"llmcli pull {DEFAULT_MODEL}" in lines[0]
    named = run_cli("run", "-m", "starter", "--temperature", "0", "-n", "8", "Say hi")
    assert named.returncode == 0 and named.stderr == ""
    assert named.stdout == proc.stdout


def test_a_model_someone_chose_is_never_swapped_for_the_starter() -> None:
    named = run_cli("run", "-m", DEFAULT_MODEL, "-n", "4", "Say hi")
    assert named.returncode == ExitCode.NETWORK and named.stdout == ""
    # One error line, which offers the starter by name rather than answering with it.
    assert named.stderr.count("\n") == 1 and named.stderr.startswith("llmcli: error:")
    assert "-m starter" in named.stderr
    configured = run_cli("run", "-n", "4", "Say hi", env={"LLMCLI_MODEL": DEFAULT_MODEL})
    assert configured.returncode == ExitCode.NETWORK and configured.stdout == ""


def test_list_and_show_know_the_starter() -> None:
    path = starter_path()
    assert path is not None and path.name.endswith(".gguf")
    rows = json.loads(run_cli("list", "--json").stdout)
    assert rows[0]["name"] == "starter" and Path(rows[0]["path"]) == path
    shown = run_cli("show", "starter", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["architecture"] == "llama"


def _connections(listener: socket.socket) -> int:
    """How many connections reached `listener` since last asked (each is closed)."""
    listener.setblocking(False)
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def test_a_hub_found_unreachable_is_not_asked_again_until_it_answers(model_file: Path) -> None:
    # Listening but not serving yet: connections are accepted and never answered.
    hub = HubServer(standard_repos(model_file.read_bytes()))
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_ETAG_TIMEOUT": "1"}
    started = False
    try:
        first = run_cli("run", "--temperature", "0", "-n", "8", "Say hi", env=env)
        assert first.returncode == 0, first.stderr
        assert "llmcli config set model starter" in first.stderr
        assert _connections(hub._httpd.socket) > 0
        # The next runs answer with the starter straight away, and say so.
        again = run_cli("run", "--temperature", "0", "-n", "8", "Say hi", env=env)
        assert again.returncode == 0 and again.stdout == first.stdout, again.stderr
        lines = again.stderr.splitlines()
        assert len(lines) == 1 and "starter model" in lines[0], again.stderr
        assert "unreachable" in lines[0] and "llmcli config set model starter" in lines[0]
        assert _connections(hub._httpd.socket) == 0
        # Once the Hub answers anything, it is asked again.
        hub._httpd.socket.setblocking(True)
        hub.start()
        started = True
        assert run_cli("pull", "test/tiny-GGUF:Q4_K_M", env=env).returncode == 0
        hub.requests.clear()
        run_cli("run", "-n", "8", "Say hi", env=env)
        assert any("Qwen2.5" in path for _, path in hub.requests), hub.requests
    finally:
        if started:
            hub.stop()
        else:
            hub._httpd.server_close()
