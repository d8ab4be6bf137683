"""The prompt cache's files: where they are, what they hold in all, and cleaning up.

The engine (`llmcli.engine.prompt_cache`) writes and reads the entries; this module only
lists, evicts and deletes them, so `llmcli cache` needs neither llama_cpp nor numpy.
Layout: one folder per model identity under `prompt_cache_dir()`, one `.kv` file per
saved prompt; `.tmp` files are entries being written (or left by a crash).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from llmcli.config import user_cache_dir

SUFFIX = ".kv"
DEFAULT_MAX_BYTES = 2 << 30


def prompt_cache_dir() -> Path:
    return user_cache_dir() / "prompts"


def max_bytes_from_env() -> int:
    """LLMCLI_PROMPT_CACHE_MB caps the cache folder (default 2048 MB)."""
    value = os.environ.get("LLMCLI_PROMPT_CACHE_MB", "").strip()
    try:
        return int(float(value) * (1 << 20)) if value else DEFAULT_MAX_BYTES
    except ValueError:
        return DEFAULT_MAX_BYTES


def remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def entries(root: Path) -> list[Path]:
    try:
        return sorted(root.glob(f"*/*{SUFFIX}"))
    except OSError:
        return []


@dataclass(frozen=True)
class Usage:
    """What the cache folder holds: entries, the models they belong to, their bytes."""

    entries: int
    models: int
    bytes: int


def usage(root: Path) -> Usage:
    files = entries(root)
    sizes = [p.stat().st_size for p in files if p.exists()]
    return Usage(len(sizes), len({p.parent.name for p in files}), sum(sizes))


def evict(root: Path, max_bytes: int) -> int:
    """Delete least recently used entries until the folder fits; returns bytes freed."""
    stats = []
    for path in entries(root):
        with contextlib.suppress(OSError):
            st = path.stat()
            stats.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in stats)
    freed = 0
    for _, size, path in sorted(stats):
        if total <= max_bytes:
            break
        remove(path)
        total -= size
        freed += size
    return freed


def clear(root: Path) -> tuple[int, int]:
    """Delete every entry (and stale temporary files); returns (files, bytes)."""
    count = size = 0
    for path in [*entries(root), *root.glob("*/*.tmp")]:
        with contextlib.suppress(OSError):
            size += path.stat().st_size
            path.unlink()
            count += 1
    return count, size
