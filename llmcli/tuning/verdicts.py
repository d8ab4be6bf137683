"""What was measured about running each model on this machine and build, kept on disk.

One JSON file per (build, CPU) holds a verdict per model file; a rebuilt engine or
another CPU starts afresh. A second, line-based file records setups that crashed in a real
run after passing their probe: the crash handler appends to it with one write(2), which is
all it may safely do, and the next run never uses that setup for that model again.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmcli.atomic import write_atomic
from llmcli.config import user_cache_dir
from llmcli.tuning.identity import build_id, cpu_description, cpu_id

ENV_DIR = "LLMCLI_ENGINE_CACHE"
FORMAT = 1
CRASHED_BEFORE = "crashed in an earlier run"
TIMED_OUT = "timed out"


def verdicts_dir() -> Path:
    """$LLMCLI_ENGINE_CACHE, else `engine/` in llmcli's cache folder."""
    override = os.environ.get(ENV_DIR, "").strip()
    return Path(override) if override else user_cache_dir() / "engine"


def _stem() -> str:
    return f"{build_id()}-{cpu_id()}"


def verdicts_file() -> Path:
    return verdicts_dir() / f"{_stem()}.json"


def crashes_file() -> Path:
    return verdicts_dir() / f"{_stem()}.crashes"


@dataclass(frozen=True)
class ProbeResult:
    """One setup tried in a child process: whether it survived, and how fast it ran."""

    setup: str
    ok: bool
    # How it failed: "SIGILL" and the like when the child died by a signal, otherwise
    # its last error line or "timed out".
    failure: str | None = None
    prompt_tps: float = 0.0
    gen_tps: float = 0.0
    # Time to evaluate a batch of n tokens, in single-token steps.
    batch_cost: dict[int, float] = field(default_factory=dict)
    # Whether any weights went to a repacked buffer: where none did, repacking or not
    # makes no difference for this model.
    repacked: bool = True

    @property
    def faulted(self) -> bool:
        """Failed in a way that says the setup is unsafe here; other failures (a file
        that does not load) fail every setup alike."""
        failure = self.failure or ""
        return not self.ok and (failure.startswith("SIG") or failure in (TIMED_OUT, CRASHED_BEFORE))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProbeResult:
        return cls(
            setup=str(data["setup"]),
            ok=bool(data["ok"]),
            failure=data.get("failure"),
            prompt_tps=float(data.get("prompt_tps", 0.0)),
            gen_tps=float(data.get("gen_tps", 0.0)),
            batch_cost={int(k): float(v) for k, v in data.get("batch_cost", {}).items()},
            repacked=bool(data.get("repacked", True)),
        )


@dataclass(frozen=True)
class Verdict:
    model: str  # identity.model_key
    setup: str
    reason: str
    threads: int
    probes: tuple[ProbeResult, ...] = ()
    measured_at: float = field(default_factory=time.time)

    @property
    def chosen(self) -> ProbeResult | None:
        return next((p for p in self.probes if p.setup == self.setup and p.ok), None)

    @property
    def batch_cost(self) -> dict[int, float]:
        chosen = self.chosen
        return dict(chosen.batch_cost) if chosen else {}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        return cls(
            model=str(data["model"]),
            setup=str(data["setup"]),
            reason=str(data.get("reason", "")),
            threads=int(data.get("threads", 0)),
            probes=tuple(ProbeResult.from_json(p) for p in data.get("probes", [])),
            measured_at=float(data.get("measured_at", 0.0)),
        )


def _read() -> dict[str, Any]:
    try:
        data = json.loads(verdicts_file().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    return data


def all_verdicts() -> list[Verdict]:
    out: list[Verdict] = []
    for entry in _read().get("verdicts", {}).values():
        with contextlib.suppress(KeyError, TypeError, ValueError):
            out.append(Verdict.from_json(entry))
    return out


def load_verdict(model: str) -> Verdict | None:
    entry = _read().get("verdicts", {}).get(model)
    if entry is None:
        return None
    try:
        return Verdict.from_json(entry)
    except (KeyError, TypeError, ValueError):
        return None


def save_verdict(verdict: Verdict) -> None:
    """Best effort: a cache that cannot be written means measuring again next time."""
    data = _read()
    name, _flags = cpu_description()
    data.update(format=FORMAT, build=build_id(), cpu=cpu_id(), cpu_name=name)
    data.setdefault("verdicts", {})[verdict.model] = asdict(verdict)
    with contextlib.suppress(OSError):
        write_atomic(verdicts_file(), json.dumps(data, indent=1, sort_keys=True))


def crash_record(setup: str, model: str) -> bytes:
    """The line the crash handler appends: prepared before any crash can happen."""
    return f"{setup}\t{model}\n".encode("utf-8", errors="surrogateescape")


def crashed_setups(model: str) -> set[str]:
    """Setups that crashed in a real run of this model, after passing their probe."""
    try:
        text = crashes_file().read_text(errors="surrogateescape")
    except OSError:
        return set()
    crashed = set()
    for line in text.splitlines():
        setup, _, key = line.partition("\t")
        if key == model:
            crashed.add(setup)
    return crashed


def forget() -> int:
    """Drop every verdict and crash record for this build and CPU; how many files went."""
    removed = 0
    for path in (verdicts_file(), crashes_file()):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed
