"""Running one engine setup in a child process, where a CPU fault costs nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from llmcli.tuning.setups import EngineSetup
from llmcli.tuning.verdicts import TIMED_OUT, ProbeResult

# Loading is the slow part of a probe: allow for big files on slow disks.
BASE_TIMEOUT_S = 60.0
TIMEOUT_S_PER_GB = 30.0


@dataclass(frozen=True)
class ProbeSpec:
    """What the child loads: the model as the parent would, but in the given setup."""

    path: str
    setup: str
    threads: int
    n_ctx: int
    n_batch: int
    n_gpu_layers: int | None
    flash_attn: bool
    embedding: bool
    pooling: str


def child_command(spec: ProbeSpec) -> list[str]:
    return [sys.executable, "-m", "llmcli.engine.calibrate", json.dumps(asdict(spec))]


def run_probe(spec: ProbeSpec, setup: EngineSetup) -> ProbeResult:
    """Load and exercise `spec` in `setup` in a child process, and say how it went."""
    spec = ProbeSpec(**{**asdict(spec), "setup": setup.name})
    try:
        size_gb = Path(spec.path).stat().st_size / 1e9
    except OSError:
        size_gb = 0.0
    try:
        proc = subprocess.run(
            child_command(spec),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=BASE_TIMEOUT_S + TIMEOUT_S_PER_GB * size_gb,
        )
    except subprocess.TimeoutExpired:
        return ProbeResult(setup.name, False, TIMED_OUT)
    return interpret(setup.name, proc.returncode, proc.stdout, proc.stderr)


def interpret(setup: str, returncode: int, stdout: str, stderr: str) -> ProbeResult:
    """A probe's outcome from its exit status and output."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return ProbeResult(setup, False, name)
    lines = stdout.strip().splitlines()
    if returncode != 0 or not lines:
        last = (stderr.strip().splitlines() or [f"exit status {returncode}"])[-1]
        return ProbeResult(setup, False, last[:200])
    try:
        data = json.loads(lines[-1])
        return ProbeResult.from_json({**data, "setup": setup, "ok": True})
    except (ValueError, KeyError, TypeError) as exc:
        return ProbeResult(setup, False, f"unreadable probe output: {exc}")
