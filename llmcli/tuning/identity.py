"""Names for "this llama.cpp build", "this CPU" and "this model file", found without
importing llama_cpp, so a verdict measured for one is never applied to another."""

from __future__ import annotations

import hashlib
import importlib.util
import platform
from functools import cache
from pathlib import Path


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@cache
def engine_dir() -> Path | None:
    """The installed llama_cpp package folder (found, not imported)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


@cache
def build_id() -> str:
    """Changes whenever llama-cpp-python is rebuilt or reinstalled: the names, sizes and
    modification times of its native libraries (a rebuild for a GPU or with other flags
    writes new ones)."""
    folder = engine_dir()
    if folder is None:
        return "none"
    parts: list[str] = []
    for lib in sorted(folder.rglob("*")):
        if lib.suffix in (".so", ".dylib", ".dll") or ".so." in lib.name:
            try:
                st = lib.stat()
            except OSError:
                continue
            parts.append(f"{lib.name}:{st.st_size}:{st.st_mtime_ns}")
    return _short_hash("\n".join(parts) or str(folder))


@cache
def cpu_description() -> tuple[str, tuple[str, ...]]:
    """The CPU's model name and feature flags (Linux: /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return (platform.processor() or platform.machine(), ())
    name = platform.machine()
    flags: tuple[str, ...] = ()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "cpu model") and name == platform.machine():
            name = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = tuple(sorted(value.split()))
    return name, flags


def cpu_id() -> str:
    name, flags = cpu_description()
    return _short_hash(f"{platform.machine()}|{name}|{' '.join(flags)}")


def model_key(path: Path) -> str:
    """What decides whether a setup faults and how fast it runs: the architecture and
    how many weights of each type there are. The same model under another path (a local
    copy, the Hub cache) shares its verdict; another quantization or size does not."""
    from llmcli.errors import LlmcliError
    from llmcli.gguf_file.info import model_card

    try:
        card = model_card(path)
    except (LlmcliError, OSError):
        st = path.stat()
        return f"file:{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    mix = ",".join(f"{t.type}:{t.tensors}:{t.parameters}" for t in card.tensor_types)
    shape = f"{card.architecture}|{card.size_bytes}|{mix}"
    label = " ".join(x for x in (card.name or path.stem, card.quantization) if x)
    return f"{label}|{_short_hash(shape)}"
