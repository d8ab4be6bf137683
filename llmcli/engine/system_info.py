"""What this llama.cpp build can do: its version, backends, CPU features, its GPUs.

Imports llama_cpp (slow) when called: `llmcli doctor`, and the commands that say where a
model runs (bench, chat's /show), once the engine is loaded anyway.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

# How to rebuild the engine with what this build lacks: beside the build they describe, so
# that the engine's own errors (no RPC backend) and `llmcli doctor` name the same commands.
# Each GPU build keeps the RPC backend (`llmcli worker`, `--rpc`) in the rebuilt engine.
CUDA_INSTALL = (
    'CMAKE_ARGS="-DGGML_CUDA=on -DGGML_RPC=on" pip install --upgrade --force-reinstall '
    "--no-cache-dir llama-cpp-python"
)
METAL_INSTALL = (
    'CMAKE_ARGS="-DGGML_METAL=on -DGGML_RPC=on" pip install --upgrade --force-reinstall '
    "--no-cache-dir llama-cpp-python"
)

# The RPC backend (`llmcli worker`, `--rpc`); combine with a GPU flag for a GPU worker.
RPC_INSTALL = (
    'CMAKE_ARGS="-DGGML_RPC=on" pip install --force-reinstall --no-cache-dir llama-cpp-python'
)

# ggml's enum ggml_backend_dev_type: CPU, GPU (dedicated memory), IGPU (integrated, host
# memory), ACCEL (BLAS, AMX: work beside the CPU backend), META (wraps other devices).
_DEVICE_GPU, _DEVICE_IGPU = 1, 2


@dataclass(frozen=True)
class EngineInfo:
    version: str | None  # llama-cpp-python's; None when it cannot be imported
    system_info: str = ""  # llama_print_system_info(), verbatim
    backends: dict[str, list[str]] = field(default_factory=dict)  # name -> features
    # Whether this build has a GPU to offload layers to (see gpu_devices).
    gpu_offload: bool = False
    gpu_devices: tuple[str, ...] = ()
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
    gpus = gpu_devices()
    return EngineInfo(
        version=str(getattr(llama_cpp, "__version__", "unknown")),
        system_info=text.strip(),
        backends=parse_system_info(text),
        gpu_offload=bool(gpus),
        gpu_devices=tuple(gpus),
        rpc=bool(llama_cpp.llama_supports_rpc()),
    )


@dataclass(frozen=True)
class GpuDevice:
    name: str
    # Bytes free and in all, as the backend reports them; None where it cannot say.
    free: int | None
    total: int | None
    # Memory shared with the CPU (an integrated GPU, Apple silicon): what is offloaded
    # still takes RAM.
    unified: bool


def gpu_devices() -> list[str]:
    """The GPUs, dedicated or integrated, this llama.cpp build can offload layers to,
    by their description; empty on a build that runs on the CPU alone."""
    return [gpu.name for gpu in gpus()]


@cache
def gpus() -> list[GpuDevice]:
    """The GPUs this llama.cpp build can offload layers to, with their memory.

    The one place that decides "GPU". `llama_supports_gpu_offload()` cannot: it is also
    true for a CPU build that has the RPC backend, and RPC workers (`--rpc`), once
    registered, list as GPU devices too, so the RPC backend's devices are left out.
    """
    import llama_cpp

    lib = _ggml(Path(llama_cpp.__file__).parent / "lib")
    if lib is None:  # a layout this code does not know: the engine's own answer
        if not llama_cpp.llama_supports_gpu_offload():
            return []
        return [GpuDevice("GPU", None, None, sys.platform == "darwin")]
    found = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        kind = lib.ggml_backend_dev_type(dev)
        if kind not in (_DEVICE_GPU, _DEVICE_IGPU):
            continue
        reg = lib.ggml_backend_dev_backend_reg(dev)
        if reg and (lib.ggml_backend_reg_name(reg) or b"") == b"RPC":
            continue
        raw = lib.ggml_backend_dev_description(dev) or lib.ggml_backend_dev_name(dev) or b"GPU"
        free, total = _device_memory(lib, dev)
        unified = kind == _DEVICE_IGPU or sys.platform == "darwin"
        found.append(GpuDevice(raw.decode("utf-8", errors="replace"), free, total, unified))
    return found


def _device_memory(lib: ctypes.CDLL, dev: int) -> tuple[int | None, int | None]:
    function = getattr(lib, "ggml_backend_dev_memory", None)
    if function is None:
        return None, None
    function.restype = None
    size = ctypes.POINTER(ctypes.c_size_t)
    function.argtypes = [ctypes.c_void_p, size, size]
    free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
    function(dev, ctypes.byref(free), ctypes.byref(total))
    return (free.value or None), (total.value or None)


def runs_on(gpu_layers: int, rpc: Sequence[str] = ()) -> str:
    """Where a model loaded with `gpu_layers` (-1: all) runs: "CPU", "GPU (name)", or
    "RPC (endpoints)" when workers take its layers."""
    if rpc:
        return f"RPC ({', '.join(rpc)})"
    gpus = gpu_devices()
    if gpu_layers and gpus:
        return f"GPU ({', '.join(gpus)})"
    return "CPU"


def _ggml(lib_dir: Path) -> ctypes.CDLL | None:
    """The libggml that libllama itself loaded: the wheel's `libggml.so`, `.so.0` and
    `.so.0.x` are copies, and another name would be a second ggml with no devices of its
    own registered (see engine/rpc.py)."""
    names = {"darwin": "libggml.0.dylib", "win32": "ggml.dll"}
    path = lib_dir / names.get(sys.platform, "libggml.so.0")
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:
        return None
    for name, restype, argtypes in (
        ("ggml_backend_dev_count", ctypes.c_size_t, []),
        ("ggml_backend_dev_get", ctypes.c_void_p, [ctypes.c_size_t]),
        ("ggml_backend_dev_type", ctypes.c_int, [ctypes.c_void_p]),
        ("ggml_backend_dev_backend_reg", ctypes.c_void_p, [ctypes.c_void_p]),
        ("ggml_backend_reg_name", ctypes.c_char_p, [ctypes.c_void_p]),
        ("ggml_backend_dev_name", ctypes.c_char_p, [ctypes.c_void_p]),
        ("ggml_backend_dev_description", ctypes.c_char_p, [ctypes.c_void_p]),
    ):
        function = getattr(lib, name, None)
        if function is None:  # an older ggml without the device registry
            return None
        function.restype, function.argtypes = restype, argtypes
    return lib


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
