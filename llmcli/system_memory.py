"""The memory available to a new process now: Linux's MemAvailable, macOS's free and
reclaimable pages. Standard library only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from llmcli.errors import UsageError
from llmcli.humanize import parse_bytes

MEMINFO = Path("/proc/meminfo")
# Plan against this much memory instead of what the system reports (a container's
# limit the system does not show, a share of a shared machine): e.g. 8GB.
ENV_MEMORY = "LLMCLI_MEMORY"
# The same for the GPU's memory, where layers are offloaded to one.
ENV_GPU_MEMORY = "LLMCLI_GPU_MEMORY"


def memory_override() -> int | None:
    """$LLMCLI_MEMORY in bytes; None when unset. UsageError when it is not a size."""
    return _size_from(ENV_MEMORY)


def gpu_memory_override() -> int | None:
    """$LLMCLI_GPU_MEMORY in bytes; None when unset. UsageError when it is not a size."""
    return _size_from(ENV_GPU_MEMORY)


def _size_from(variable: str) -> int | None:
    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    size = parse_bytes(text)
    if size is None:
        raise UsageError(f"{variable}: not a size: {text!r} (e.g. 16GB, 8GiB)")
    return size


def memory_for_models() -> int | None:
    """What a model may use: $LLMCLI_MEMORY, else what is available now (None: unknown)."""
    override = memory_override()
    return override if override is not None else available_memory()


def available_memory() -> int | None:
    """Bytes a new program can use without swapping, or None where unknown."""
    if MEMINFO.exists():
        return _from_meminfo(MEMINFO.read_text(encoding="ascii", errors="replace"))
    if sys.platform == "darwin":
        return _from_vm_stat()
    return None


def _from_meminfo(text: str) -> int | None:
    match = re.search(r"^MemAvailable:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def _from_vm_stat() -> int | None:
    """Free, inactive and purgeable pages, as macOS's Activity Monitor counts them
    (page cache it can drop)."""
    try:
        out = subprocess.run(
            ["vm_stat"], capture_output=True, text=True, timeout=5, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    page = re.search(r"page size of (\d+) bytes", out)
    pages = 0
    for name in ("Pages free", "Pages inactive", "Pages purgeable", "Pages speculative"):
        found = re.search(rf"^{name}:\s+(\d+)", out, re.MULTILINE)
        pages += int(found.group(1)) if found else 0
    return pages * int(page.group(1)) if page and pages else None
