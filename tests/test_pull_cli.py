"""`llmcli pull`, `list`, `rm` and `run -m <hub ref>` as users and scripts run them: a
subprocess with pipes, against the local Hub look-alike."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from clihelpers import run_cli
from hubserver import DEAD_ENDPOINT, GATED_TOKEN, HubServer, refusing_endpoint, silent_endpoint
from testmodel import model_path

from llmcli import store
from llmcli.errors import ExitCode


def llmcli_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env, timeout=300)


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "llmcli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cache_dir() -> Path:
    return store.HubSettings.from_env().cache_dir


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- pull ---------------------------------------------------------------------------------


def test_pull_prints_only_the_path_on_stdout(hub: HubServer) -> None:
    result = llmcli_run("pull", "test/tiny-GGUF:Q8_0")
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert result.stdout == f"{path}\n"
    assert path.name == "tiny-Q8_0.gguf" and path.is_file()
    assert "pulling test/tiny-GGUF:Q8_0" in result.stderr
    assert "downloading tiny-Q8_0.gguf" in result.stderr  # plain progress: not a terminal


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["pull", "test/nope-GGUF"], 3, "not found on the Hub"),
        (["pull", "test/tiny-GGUF:Q2_K"], 3, "available quantizations"),
        (["pull", "nosuchalias"], 3, "unknown model name"),
        (["pull", "test/badsha-GGUF"], 4, "SHA-256"),
        (["pull", "test/evil-GGUF"], 4, "unsafe file name"),
        (["pull", "test/tiny-GGUF/../x.gguf"], 2, "unsafe file name"),
        (["pull", "test/gated-GGUF"], 6, "HF_TOKEN"),
        (["pull", "./local.gguf"], 2, "local file"),
    ],
)
def test_pull_errors_are_one_line_with_an_exit_code(
    hub: HubServer, args: list[str], code: int, message: str
) -> None:
    result = llmcli_run(*args, env={"HF_TOKEN": "hf_not_the_right_one"})
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "hf_not_the_right_one" not in result.stderr


def test_gated_repo_with_a_token(hub: HubServer) -> None:
    result = llmcli_run("pull", "test/gated-GGUF", env={"HF_TOKEN": GATED_TOKEN})
    assert result.returncode == 0, result.stderr
    assert GATED_TOKEN not in result.stderr + result.stdout


def test_interrupted_pull_leaves_nothing_usable_and_rerun_succeeds(hub: HubServer) -> None:
    blobs = cache_dir() / "models--test--slow-GGUF" / "blobs"
    proc = spawn("pull", "test/slow-GGUF")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until bytes are landing on disk
        partial = list(blobs.glob("*.incomplete")) if blobs.is_dir() else []
        if partial and partial[0].stat().st_size > 1 << 20:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the download never started")
    proc.kill()  # SIGKILL: no cleanup code runs at all
    proc.wait()
    assert store.list_models() == []
    offline = llmcli_run("run", "-m", "test/slow-GGUF", "Hi", env={"HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 6, offline.stderr  # not mistaken for a cached model
    # The partial file stays until nobody could still be writing it (a minute untouched).
    [partial] = blobs.glob("*.incomplete")
    listed = llmcli_run("list")
    assert "reclaimable" not in listed.stderr
    an_hour_ago = time.time() - 3600
    os.utime(partial, (an_hour_ago, an_hour_ago))
    listed = llmcli_run("list")
    assert listed.returncode == 0, listed.stderr
    assert "reclaimable from interrupted downloads (test/slow-GGUF)" in listed.stderr
    rerun = llmcli_run("pull", "test/slow-GGUF")
    assert rerun.returncode == 0, rerun.stderr
    expected = hub.repos["test/slow-GGUF"].files["slow-Q4_K_M.gguf"].sha256
    assert sha256(Path(rerun.stdout.strip())) == expected
    assert list(blobs.glob("*.incomplete")) == []  # the killed pull's file is gone
    assert "reclaimable" not in llmcli_run("list").stderr


def test_ctrl_c_exits_130_and_cleans_up(hub: HubServer) -> None:
    blobs = cache_dir() / "models--test--slow-GGUF" / "blobs"
    proc = spawn("pull", "test/slow-GGUF")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (blobs.is_dir() and any(blobs.iterdir())):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert [p for p in blobs.iterdir()] == []  # the partial download was removed
    assert store.list_models() == []


def test_concurrent_pulls_of_the_same_model(hub: HubServer) -> None:
    procs = [spawn("pull", "test/SmolLM2-GGUF") for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    paths = {out.strip() for out, _err in results}
    assert len(paths) == 1
    assert sha256(Path(paths.pop())) == sha256(model_path())
    blobs = list((cache_dir() / "models--test--SmolLM2-GGUF" / "blobs").iterdir())
    assert len(blobs) == 1


# -- an unreachable Hub -------------------------------------------------------------------

# Far above the few seconds these take; only here so that a hang fails the test.
HANG_LIMIT_S = 30


@pytest.mark.parametrize("endpoint", [refusing_endpoint, silent_endpoint])
@pytest.mark.parametrize(
    # A named model: without one, `run` would answer with the starter model instead.
    "args",
    [["pull", "smollm2"], ["run", "-m", "qwen2.5:1.5b", "Why is the sky blue?"]],
    ids=["pull", "run"],
)
def test_an_unreachable_hub_is_one_line_that_says_what_to_do(
    endpoint: Callable[[], AbstractContextManager[str]], args: list[str]
) -> None:
    with endpoint() as url:
        result = run_cli(*args, env={"HF_ENDPOINT": url}, timeout=HANG_LIMIT_S)
    assert result.returncode == 6, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # no retry log from the library, no notices
    assert lines[0].startswith(f"llmcli: error: cannot reach the Hub at {url}: ")
    # The cache is empty: the way forward is a local file, or another endpoint.
    assert "-m ./model.gguf" in lines[0] and "HF_ENDPOINT" in lines[0]
    assert "-m starter" in lines[0]  # installed with the test extra


def test_an_unreachable_hub_points_at_cached_models_when_there_are_some(
    hub: HubServer,
) -> None:
    assert llmcli_run("pull", "test/tiny-GGUF").returncode == 0
    with refusing_endpoint() as url:
        result = run_cli("pull", "smollm2", env={"HF_ENDPOINT": url}, timeout=HANG_LIMIT_S)
    assert result.returncode == 6, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "llmcli list" in result.stderr and "HF_HUB_OFFLINE=1" in result.stderr


# -- list and rm --------------------------------------------------------------------------


def test_list_json_and_plain(hub: HubServer) -> None:
    assert llmcli_run("pull", "test/tiny-GGUF").returncode == 0
    assert llmcli_run("pull", "test/split-GGUF").returncode == 0
    listed = llmcli_run("list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows.pop("starter")["quant"] == "Q4_1"  # installed with the test extra
    assert sorted(rows) == ["test/split-GGUF:Q4_K_M", "test/tiny-GGUF:Q4_K_M"]
    assert rows["test/split-GGUF:Q4_K_M"]["size"] == model_path().stat().st_size
    assert rows["test/tiny-GGUF:Q4_K_M"]["files"] == ["tiny-Q4_K_M.gguf"]
    assert rows["test/tiny-GGUF:Q4_K_M"]["repo"] == "test/tiny-GGUF"
    plain = llmcli_run("ls")
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert lines[0].split() == ["NAME", "QUANT", "SIZE", "MODIFIED", "REPO", "FILE"]
    assert [line.split()[0] for line in lines[1:]] == ["starter", *sorted(rows)]


def test_list_of_an_empty_cache() -> None:
    result = llmcli_run("list", "--json")
    assert result.returncode == 0
    (only,) = json.loads(result.stdout)  # the starter model, which pip installed
    assert only["name"] == "starter" and Path(only["path"]).is_file()


def test_rm_refuses_without_yes_when_nobody_can_answer(hub: HubServer) -> None:
    assert llmcli_run("pull", "test/tiny-GGUF").returncode == 0
    refused = llmcli_run("rm", "test/tiny-GGUF")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr and refused.stdout == ""
    assert "test/tiny-GGUF:Q4_K_M" in refused.stderr  # it still shows what would go
    assert [m.name for m in store.list_models()] == ["test/tiny-GGUF:Q4_K_M"]


def test_rm_with_yes(hub: HubServer) -> None:
    assert llmcli_run("pull", "test/tiny-GGUF").returncode == 0
    assert llmcli_run("pull", "test/tiny-GGUF:Q8_0").returncode == 0
    removed = llmcli_run("rm", "-y", "test/tiny-GGUF:Q8_0")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == "test/tiny-GGUF:Q8_0\n"
    assert "8.2 kB" in removed.stderr  # the space freed
    assert [m.name for m in store.list_models()] == ["test/tiny-GGUF:Q4_K_M"]
    missing = llmcli_run("rm", "--yes", "test/tiny-GGUF:Q8_0")
    assert missing.returncode == 3 and "not in the cache" in missing.stderr


def test_rm_reclaims_an_interrupted_download() -> None:
    blobs = cache_dir() / "models--test--slow-GGUF" / "blobs"
    blobs.mkdir(parents=True)
    partial = blobs / f"{'a' * 64}.0123abcd.incomplete"
    partial.write_bytes(b"x" * 3000)
    os.utime(partial, (time.time() - 3600, time.time() - 3600))
    removed = llmcli_run("rm", "--yes", "test/slow-GGUF")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == ""  # no model was deleted
    assert "(interrupted download)" in removed.stderr and "3.0 kB" in removed.stderr
    assert not partial.exists()


# -- run -m with a Hub reference (needs the run command) ------------------------------------


def test_run_pulls_a_hub_model_on_first_use(hub: HubServer) -> None:
    result = llmcli_run("run", "-m", "test/SmolLM2-GGUF", "--temperature", "0", "-n", "8", "Hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_run_uses_a_pulled_model_offline(hub: HubServer) -> None:
    assert llmcli_run("pull", "test/SmolLM2-GGUF").returncode == 0
    offline = {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": DEAD_ENDPOINT}
    hub.requests.clear()
    result = llmcli_run(
        "run", "-m", "test/SmolLM2-GGUF", "--temperature", "0", "-n", "8", "Hi", env=offline
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert hub.requests == []


@pytest.mark.parametrize("name", ["HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT"])
@pytest.mark.parametrize("command", [("pull", "smollm2:135m"), ("list",)])
def test_a_timeout_the_hub_library_cannot_read_is_one_clear_line(
    name: str, command: tuple[str, ...]
) -> None:
    # huggingface_hub reads these as whole seconds when imported, and fails inside its
    # own import on "0.5".
    proc = run_cli(*command, env={name: "0.5"})
    assert proc.returncode == ExitCode.USAGE
    assert proc.stderr.splitlines() == [
        f"llmcli: error: {name} must be a whole number of seconds, not '0.5'"
    ]
