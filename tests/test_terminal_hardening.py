"""What a person meets at a terminal: Ctrl-C at any moment, answers that run away, typing
while the chat answers, and a first run without the Hub. The real CLI in a subprocess or a
real pseudo-terminal, on the real model."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from clihelpers import cli_command

# -- Ctrl-C at any moment -------------------------------------------------------------

COUNT = ("--temperature", "0", "-n", "64", "Count from 1 to 50.")


def _blocked_on_stderr(args: list[str], *, until: bytes) -> subprocess.Popen[bytes]:
    """llmcli started with stderr on a pipe of one page that is read until `until` shows,
    then no more: the program is held at its next write to stderr, wherever that is."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    fcntl.fcntl(proc.stderr.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    seen = b""
    deadline = time.monotonic() + 60
    while until not in seen:
        assert time.monotonic() < deadline, seen[-2000:]
        chunk = os.read(proc.stderr.fileno(), 512)
        assert chunk, seen[-2000:]
        seen += chunk
    time.sleep(0.3)  # the program writes on until the pipe is full, and waits there
    return proc


def _interrupted(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def test_ctrl_c_while_the_model_loads_ends_the_run(model_file: Path) -> None:
    # --verbose sends llama.cpp's load log to stderr; the run is held inside the load,
    # where llama.cpp calls back into Python for each line of it.
    proc = _blocked_on_stderr(
        cli_command("run", "-m", str(model_file), "--verbose", *COUNT),
        until=b"llama_model_loader",
    )
    code, out, err = _interrupted(proc)
    assert code == 130, err[-2000:]
    assert out == ""
    assert "Traceback" not in err


def test_ctrl_c_while_the_program_starts_ends_it_quietly(model_file: Path) -> None:
    # -X importtime writes a line per module imported: the run is held among its imports.
    args = cli_command("run", "-m", str(model_file), *COUNT)
    proc = _blocked_on_stderr([args[0], "-X", "importtime", *args[1:]], until=b"| llmcli\n")
    code, out, err = _interrupted(proc)
    assert code == 130, err[-2000:]
    assert out == ""
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


@pytest.mark.parametrize("delay", [0.1, 0.25, 0.4])
def test_ctrl_c_at_any_moment_exits_130(model_file: Path, delay: float) -> None:
    proc = subprocess.Popen(
        cli_command("run", "-m", str(model_file), *COUNT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(delay)
    code, _, err = _interrupted(proc)
    assert code == 130, err
    assert "Traceback" not in err
