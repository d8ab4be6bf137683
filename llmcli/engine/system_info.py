"""What this llama.cpp build can do: its version, backends, CPU features, GPU offload.

Imports llama_cpp (slow), so only `llmcli doctor` calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EngineInfo:
    version: str | None  # llama-cpp-python's; None when it cannot be imported
    system_info: str = ""  # llama_print_system_info(), verbatim
    backends: dict[str, list[str]] = field(default_factory=dict)  # name -> features
    gpu_offload: bool = False
    # The RPC backend (`llmcli worker`, --rpc): only in builds made with -DGGML_RPC=on.
    rpc: bool = False
    error: str | None = None


def engine_info() -> EngineInfo:
    try:
        import llama_cpp
    except Exception as exc:  # a broken build raises OSError, a missing one ImportError
        return EngineInfo(None, error=f"{type(exc).__name__}: {exc}")
    raw = llama_cpp.llama_print_system_info()
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    return EngineInfo(
        version=str(getattr(llama_cpp, "__version__", "unknown")),
        system_info=text.strip(),
        backends=parse_system_info(text),
        gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
        rpc=bool(llama_cpp.llama_supports_rpc()),
    )


def parse_system_info(text: str) -> dict[str, list[str]]:
    """`CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX = 0 |` ->
    {"CUDA": ["ARCHS=890", "USE_GRAPHS"], "CPU": ["SSE3"]}: features switched off are
    left out, valued ones keep their value."""
    backends: dict[str, list[str]] = {}
    current: list[str] | None = None
    for part in (p.strip() for p in text.split("|")):
        if not part:
            continue
        if " : " in part:
            name, _, part = part.partition(" : ")
            current = backends.setdefault(name.strip(), [])
        if current is None:
            continue
        key, eq, value = (s.strip() for s in part.partition("="))
        if not eq or value == "1":
            current.append(key)
        elif value != "0":
            current.append(f"{key}={value}")
    return backends
