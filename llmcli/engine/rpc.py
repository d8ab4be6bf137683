"""Splitting a model across machines with llama.cpp's RPC backend.

A worker (`llmcli worker`, in `rpc_server`) serves its machine's CPU or GPU over TCP; a
client registers each worker as a device before the model loads, and llama.cpp spreads
the layers over every device it knows, as `llama-cli --rpc` does (common/arg.cpp,
add_rpc_devices). This module is the client side and the way to the library; `split`
reads how a load was spread.

The RPC backend is reached through ggml's own registry, in the very library instance
libllama uses: the wheel ships `libggml.so`, `.so.0` and `.so.0.x` as copies, not links,
and libllama loads `.so.0`. Opening another name would load a second ggml with its own
device registry, and the devices registered there would be silently unused.

Only llama.cpp builds made with `-DGGML_RPC=on` have the backend.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import llama_cpp

from llmcli.engine import crash_guard
from llmcli.engine.system_info import RPC_INSTALL
from llmcli.errors import UsageError, WorkerLostError

CONNECT_TIMEOUT_S = 5.0


_registered: set[str] = set()
_lock = threading.Lock()


class RpcUnavailableError(UsageError):
    """This llama.cpp build has no RPC backend."""

    def __init__(self) -> None:
        gpu = bool(llama_cpp.llama_supports_gpu_offload())
        keep_gpu = "; keep this build's GPU flag too, e.g. -DGGML_CUDA=on" if gpu else ""
        super().__init__(
            "this llama.cpp build has no RPC backend",
            hint=f"reinstall it with RPC: {RPC_INSTALL}{keep_gpu}",
        )


def _ggml_file_names() -> tuple[str, ...]:
    if sys.platform == "darwin":
        return ("libggml.0.dylib", "libggml.dylib")
    if sys.platform == "win32":
        return ("ggml.dll",)
    return ("libggml.so.0",)


def _ggml() -> ctypes.CDLL:
    """The libggml instance libllama itself loaded (see the module's docstring)."""
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    for name in _ggml_file_names():
        path = lib_dir / name
        if path.exists():
            lib = ctypes.CDLL(str(path))
            lib.ggml_backend_reg_by_name.argtypes = [ctypes.c_char_p]
            lib.ggml_backend_reg_by_name.restype = ctypes.c_void_p
            lib.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
            lib.ggml_backend_register.argtypes = [ctypes.c_void_p]
            lib.ggml_backend_register.restype = None
            lib.ggml_backend_dev_count.argtypes = []
            lib.ggml_backend_dev_count.restype = ctypes.c_size_t
            lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
            lib.ggml_backend_dev_get.restype = ctypes.c_void_p
            lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
            lib.ggml_backend_dev_type.restype = ctypes.c_int
            lib.ggml_backend_dev_name.argtypes = [ctypes.c_void_p]
            lib.ggml_backend_dev_name.restype = ctypes.c_char_p
            lib.ggml_backend_dev_description.argtypes = [ctypes.c_void_p]
            lib.ggml_backend_dev_description.restype = ctypes.c_char_p
            lib.ggml_backend_dev_memory.argtypes = [
                ctypes.c_void_p,
                ctypes.POINTER(ctypes.c_size_t),
                ctypes.POINTER(ctypes.c_size_t),
            ]
            lib.ggml_backend_dev_memory.restype = None
            return lib
    raise RpcUnavailableError()


def rpc_supported() -> bool:
    """Whether this build has the RPC backend (llama_supports_rpc)."""
    return bool(llama_cpp.llama_supports_rpc())


def require_rpc() -> tuple[ctypes.CDLL, int]:
    """ggml and its RPC backend registry; RpcUnavailableError on a build without it."""
    if not rpc_supported():
        raise RpcUnavailableError()
    lib = _ggml()
    reg = lib.ggml_backend_reg_by_name(b"RPC")
    if not reg:
        raise RpcUnavailableError()
    return lib, int(reg)


def proc(lib: ctypes.CDLL, reg: int, name: str) -> int:
    address = lib.ggml_backend_reg_get_proc_address(reg, name.encode())
    if not address:
        raise RpcUnavailableError()
    return int(address)


# -- endpoints ---------------------------------------------------------------------------


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def check_reachable(endpoint: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """WorkerLostError naming the worker when nothing answers at `endpoint`.

    llama.cpp aborts the whole process when it cannot connect, so this is asked first.
    """
    host, port = _split(endpoint)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise WorkerLostError(
            f"cannot reach the RPC worker {endpoint}: {reason}",
            hint=f"start it there with `llmcli worker --host {host} --port {port}`, "
            "or check the address and the firewall",
        ) from None


def not_a_worker_message(endpoint: str) -> str:
    return (
        f"llmcli: error: {endpoint} did not answer as an RPC worker this llama.cpp can talk "
        "to: run `llmcli worker` there, with the same llama-cpp-python version and an RPC "
        "build on both sides\n"
    )


def add_workers(endpoints: Sequence[str]) -> None:
    """Register each worker's devices with ggml, once per process, before a load."""
    lib, reg = require_rpc()
    add_server = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)(
        proc(lib, reg, "ggml_backend_rpc_add_server")
    )
    with _lock:
        for endpoint in endpoints:
            if endpoint in _registered:
                continue
            check_reachable(endpoint)
            # Something answers; llama.cpp aborts if it is not a worker it can talk to.
            with crash_guard.abort_says(not_a_worker_message(endpoint)):
                server_reg = add_server(endpoint.encode())
            if not server_reg:
                raise WorkerLostError(f"the RPC worker {endpoint} did not register")
            lib.ggml_backend_register(server_reg)
            _registered.add(endpoint)


# -- aborts ------------------------------------------------------------------------------

_ABORT_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_char_p)


def _on_abort(message: bytes | None) -> None:
    # ggml aborts the process right after this returns; the crash guard then says which
    # worker was lost, so ggml's own line about the RPC backend is left out.
    if message and b"ggml-rpc" not in message:
        os.write(2, message + b"\n")


_abort_callback = _ABORT_CALLBACK(_on_abort)


def quiet_rpc_aborts() -> None:
    """Replace ggml's abort message and debugger backtrace for the RPC backend's aborts
    (a lost worker is not a bug to debug); other aborts still print their message."""
    names = {"darwin": "libggml-base.0.dylib", "win32": "ggml-base.dll"}
    path = Path(llama_cpp.__file__).parent / "lib" / names.get(sys.platform, "libggml-base.so.0")
    try:
        base = ctypes.CDLL(str(path))
        base.ggml_set_abort_callback.argtypes = [_ABORT_CALLBACK]
        base.ggml_set_abort_callback.restype = ctypes.c_void_p
    except (OSError, AttributeError):
        return
    base.ggml_set_abort_callback(_abort_callback)
