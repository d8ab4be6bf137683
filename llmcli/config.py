"""Paths and environment variables, resolved in one place.

Kept free of heavy imports: it is read on every start, including shell completion.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_MODEL = "LLMCLI_MODEL"
ENV_DEBUG = "LLMCLI_DEBUG"


def debug_enabled() -> bool:
    """True when the user asked for tracebacks instead of one-line errors."""
    return os.environ.get(ENV_DEBUG, "").strip().lower() not in ("", "0", "false", "no")


def env_model() -> str | None:
    value = os.environ.get(ENV_MODEL, "").strip()
    return value or None


def usable_cores() -> int:
    """Cores this process may run on: respects CPU affinity and cgroup quotas,
    unlike os.cpu_count()."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity API
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, quota)
    return max(1, cores)


def _cgroup_cpu_quota() -> int | None:
    """The cgroup v2 CPU limit in whole cores, if one is set."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except OSError:
        return None
    if len(text) != 2 or text[0] == "max":
        return None
    try:
        quota, period = int(text[0]), int(text[1])
    except ValueError:
        return None
    return max(1, quota // period) if period > 0 else None


def user_data_dir() -> Path:
    """Where llmcli keeps what it writes for the user (chat history, conversations)."""
    override = os.environ.get("LLMCLI_HOME")
    if override:
        return Path(override)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "llmcli"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llmcli"
