"""`llmcli run` with tools, end to end: the real model (with Qwen3's chat template, whose
tokens are the test model's), real Python tool files, real MCP servers written with the
official SDK over stdio and streamable HTTP. The test model is no reliable tool user: a
named --tool-choice makes it call, and the grammar built from the tool's schema makes the
call valid, which is what these tests check."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from clihelpers import cli_command, run_cli

from llmcli.tools.python_file import load, schema_of

FIXTURES = Path(__file__).parent / "tool_fixtures"
PY_TOOLS = FIXTURES / "python_tools.py"
MCP_SERVER = f"{sys.executable} {FIXTURES / 'mcp_server.py'}"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}


@pytest.fixture(autouse=True)
def pinned_engine_setup(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about tools: the engine setup is pinned, so that no setup probe
    (slow on a busy machine) runs for the fixture model's copy of the weights."""
    monkeypatch.setenv("LLMCLI_ENGINE_SETUP", "no-repack")


@pytest.fixture(scope="module")
def model(family_model: Callable[..., Path]) -> Path:
    return family_model("qwen3", weights=True)


def run_args(model: Path, *args: str) -> tuple[str, ...]:
    """`run` on `model`, greedy, 64 tokens at most, not logged, then `args`."""
    return ("run", "-m", str(model), "--temperature", "0", "-n", "64", "--no-log", *args)


def run_tools(model: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return run_cli(*run_args(model, *args), env=env, timeout=400)


def one_line_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("llmcli: error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    return errors[0]


# -- Python functions ------------------------------------------------------------------


def test_a_tool_file_call_runs_and_json_carries_calls_and_results(model: Path) -> None:
    """Round one must call get_weather; round two runs with choice auto, the lazy grammar
    in one-shot generation: whatever it calls is valid too."""
    proc = run_tools(
        model,
        "--tool-file",
        str(PY_TOOLS),
        "--tool-choice",
        "get_weather",
        "--max-steps",
        "2",
        "--yes",
        "--json",
        "What is the weather in Paris?",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    first, *later = data["tool_calls"]
    assert first["name"] == "get_weather" and first["status"] == "ok"
    jsonschema.validate(first["arguments"], WEATHER_SCHEMA)
    args = first["arguments"]
    assert first["result"] == f"Sunny and 21 degrees {args['unit']} in {args['city']}"
    schemas = {t.name: t.parameters for t in load(PY_TOOLS).tools}
    for call in later:
        jsonschema.validate(call["arguments"], schemas[call["name"]])
    assert data["steps"] == 1 + bool(later)
    assert isinstance(data["text"], str)
    # The call and its result on stderr; the function without a docstring is no tool.
    assert f"tool call: get_weather {json.dumps(args, ensure_ascii=False)}" in proc.stderr
    assert "tool result: get_weather: Sunny" in proc.stderr
    assert "helper is not a tool: it has no docstring" in proc.stderr


def test_a_tool_that_raises_sends_its_error_back_and_stdout_has_no_calls(model: Path) -> None:
    proc = run_tools(
        model,
        "--tool-file",
        str(PY_TOOLS),
        "--tool-choice",
        "explode",
        "--max-steps",
        "1",
        "--yes",
        "Go.",
    )
    assert proc.returncode == 0, proc.stderr
    call = re.search(r"^tool call: explode (.*)$", proc.stderr, re.MULTILINE)
    assert call is not None, proc.stderr
    reason = json.loads(call.group(1))["reason"]
    said = f"error: RuntimeError: boom ({len(reason)} characters of reason)"
    assert f"tool error: explode: {said}" in proc.stderr.splitlines()
    assert "--max-steps 1" in proc.stderr
    assert "tool call" not in proc.stdout and "tool error" not in proc.stdout


def test_a_tool_that_hangs_times_out(model: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "hang.pid"
    proc = run_tools(
        model,
        "--tool-file",
        str(PY_TOOLS),
        "--tool-choice",
        "hang",
        "--tool-timeout",
        "1",
        "--max-steps",
        "1",
        "--yes",
        "--json",
        "Go.",
        env={"TOOL_PID": str(pid_file)},
    )
    assert proc.returncode == 0, proc.stderr
    [call] = json.loads(proc.stdout)["tool_calls"]
    assert call["status"] == "error"
    assert call["result"] == "error: the tool hang did not finish within 1 s"
    # The function ran in a child process, which was killed: nothing of it is left.
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_without_a_terminal_or_yes_a_call_is_refused_and_nothing_runs(
    model: Path, tmp_path: Path
) -> None:
    mark = tmp_path / "mark.txt"
    proc = run_tools(
        model,
        "--tool-file",
        str(PY_TOOLS),
        "--tool-choice",
        "record",
        "Note that it rained.",
        env={"TOOL_MARK": str(mark)},
    )
    assert proc.returncode == 15
    assert "no terminal to ask" in one_line_error(proc.stderr)
    assert "--yes" in proc.stderr
    assert not mark.exists()
    assert proc.stdout == ""


def test_a_tool_choice_naming_no_tool_is_a_usage_error(model: Path) -> None:
    proc = run_tools(model, "--tool-file", str(PY_TOOLS), "--tool-choice", "nope", "Hi")
    assert proc.returncode == 2
    assert "'nope'" in one_line_error(proc.stderr)


# -- approval on a real terminal -------------------------------------------------------


@pytest.mark.parametrize(("answer", "ran"), [("y", True), ("n", False), ("a", True)])
def test_approval_is_asked_on_a_terminal(
    model: Path, tmp_path: Path, answer: str, ran: bool
) -> None:
    pexpect = pytest.importorskip("pexpect")
    mark = tmp_path / "mark.txt"
    argv = cli_command(
        *run_args(model),
        "--plain",
        "--tool-file",
        str(PY_TOOLS),
        "--tool-choice",
        "record",
        "--max-steps",
        "1",
        "--json",
        "Note that it rained.",
    )
    child = pexpect.spawn(
        argv[0],
        argv[1:],
        env={**os.environ, "TOOL_MARK": str(mark), "TERM": "xterm"},
        encoding="utf-8",
        timeout=400,
        dimensions=(40, 120),
    )
    child.expect(r"→ record")
    child.expect(r"Run record\? \[y\]es, \[n\]o, \[a\]lways for record: ")
    child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert mark.exists() == ran
    # --json (on the terminal too) carries what the model was given as the result.
    if ran:
        assert '"status": "ok"' in child.before and '"result": "recorded"' in child.before
    else:
        assert '"status": "declined"' in child.before
        assert '"result": "the user declined to run this call"' in child.before


# -- MCP servers -----------------------------------------------------------------------


def test_an_mcp_server_over_stdio_is_called_and_ended(model: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    proc = run_tools(
        model,
        "--mcp",
        MCP_SERVER,
        "--tool-choice",
        "add",
        "--max-steps",
        "1",
        "--yes",
        "--json",
        "What is 2 + 3?",
        env={"MCP_PID": str(pid_file)},
    )
    assert proc.returncode == 0, proc.stderr
    [call] = json.loads(proc.stdout)["tool_calls"]
    args = call["arguments"]
    assert call["status"] == "ok"
    assert call["result"] == str(args["a"] + args["b"])
    assert not _running(int(pid_file.read_text()))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def http_server() -> Iterator[str]:
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, str(FIXTURES / "mcp_server.py"), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        child.terminate()
        child.wait(timeout=30)


def test_an_mcp_server_over_streamable_http_is_called(model: Path, http_server: str) -> None:
    proc = run_tools(
        model,
        "--mcp",
        http_server,
        "--tool-choice",
        "add",
        "--max-steps",
        "1",
        "--yes",
        "--json",
        "What is 2 + 3?",
    )
    assert proc.returncode == 0, proc.stderr
    [call] = json.loads(proc.stdout)["tool_calls"]
    assert call["result"] == str(call["arguments"]["a"] + call["arguments"]["b"])


def test_an_mcp_server_that_fails_to_start(model: Path) -> None:
    failing = f"{sys.executable} -c \"import sys; sys.exit('no API key given')\""
    proc = run_tools(model, "--mcp", failing, "--yes", "Hi")
    assert proc.returncode == 16
    line = one_line_error(proc.stderr)
    assert "failed to start" in line and "no API key given" in line
    missing = run_tools(model, "--mcp", "/nonexistent/mcp-server --flag", "--yes", "Hi")
    assert missing.returncode == 16
    assert "no such command: /nonexistent/mcp-server" in one_line_error(missing.stderr)


def test_an_mcp_server_that_dies_mid_call(model: Path) -> None:
    proc = run_tools(model, "--mcp", MCP_SERVER, "--tool-choice", "die", "--yes", "Go.")
    assert proc.returncode == 16
    assert "was lost during a call to die" in one_line_error(proc.stderr)


@pytest.mark.parametrize(
    ("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)]
)
def test_ctrl_c_or_sigterm_during_a_call_ends_the_mcp_server(
    model: Path, tmp_path: Path, sent: signal.Signals, code: int
) -> None:
    pid_file = tmp_path / "pid"
    child = subprocess.Popen(
        cli_command(
            "run",
            "-m",
            str(model),
            "--temperature",
            "0",
            "--no-log",
            "--mcp",
            MCP_SERVER,
            "--tool-choice",
            "slow",
            "--yes",
            "Go.",
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "MCP_PID": str(pid_file)},
        text=True,
    )
    assert child.stderr is not None
    for line in child.stderr:  # wait until the call is under way
        if line.startswith("tool call: slow"):
            break
    server = int(pid_file.read_text())
    assert _running(server)
    child.send_signal(sent)
    child.communicate(timeout=60)
    assert child.returncode == code
    assert not _running(server)


def _running(pid: int) -> bool:
    """Whether the process is alive (a zombie left for its parent to reap is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


# -- schemas from type hints -------------------------------------------------------------


def test_json_schemas_from_type_hints() -> None:
    from typing import Literal

    assert schema_of(int) == {"type": "integer"}
    assert schema_of(list[str]) == {"type": "array", "items": {"type": "string"}}
    assert schema_of(Literal["a", "b"]) == {"enum": ["a", "b"]}
    assert schema_of(str | None) == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    with pytest.raises(TypeError):
        schema_of(dict[int, str])
    loaded = load(PY_TOOLS)
    tools, notes = loaded.tools, loaded.notes
    assert [t.name for t in tools] == ["get_weather", "explode", "hang", "record"]
    assert tools[0].parameters == {
        **WEATHER_SCHEMA,
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
    }
    assert tools[0].description == "The weather in a city now."
    assert notes == [f"{PY_TOOLS}: helper is not a tool: it has no docstring"]


# -- other families --------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["deepseek-r1-distill", "gpt-oss"])
def test_a_required_call_runs_with_other_families_templates(model_file: Path, family: str) -> None:
    """DeepSeek R1's template opens the thinking block itself: a call required from the
    first token is made with thinking off, or it would be read as thinking."""
    proc = run_tools(
        model_file,
        "--template",
        str(Path(__file__).parent / "chat_templates" / f"{family}.jinja"),
        "--tool-file",
        str(PY_TOOLS),
        "--tool-choice",
        "get_weather",
        "--max-steps",
        "1",
        "-n",
        "200",
        "--yes",
        "--json",
        "What is the weather in Paris?",
    )
    assert proc.returncode == 0, proc.stderr
    [call] = json.loads(proc.stdout)["tool_calls"]
    assert call["name"] == "get_weather" and call["status"] == "ok"
    jsonschema.validate(call["arguments"], WEATHER_SCHEMA)
