"""Running llmcli as a subprocess, the way users and scripts do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


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
