"""Running llmcli as a subprocess, the way users and scripts do."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmcli", *args]


def run_cli(
    *args: str,
    input: bytes | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run llmcli in a subprocess with pipes for stdin, stdout and stderr."""
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run(
        cli_command(*args),
        input=data if data is not None else b"",
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", errors="replace"),
        proc.stderr.decode("utf-8", errors="replace"),
    )


# Every ANSI escape: CSI (colours, cursor moves), OSC (hyperlinks, titles), charset
# selection, and any other two-byte ESC sequence. Piped output must contain none.
ESCAPE = re.compile(
    r"\x1b(?:"
    r"\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC, ended by BEL or ST
    r"|[()*+][ -~]"  # charset selection (G0 to G3)
    r"|[@-_]"  # any other escape (Fe), unfinished CSI and OSC included
    r")"
)


def cli_json(*args: str, input: str | None = None) -> Any:
    """Run llmcli, insist it succeeded, and parse its stdout as one JSON document."""
    proc = run_cli(*args, input=input)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def jsonl(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def greedy(model: Path, *args: str, n: int = 24, **kw: Any) -> subprocess.CompletedProcess[str]:
    """`llmcli run` with temperature 0 and at most `n` tokens: the same answer every time."""
    return run_cli("run", "-m", str(model), "--temperature", "0", "-n", str(n), *args, **kw)
