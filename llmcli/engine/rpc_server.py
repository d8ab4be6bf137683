"""The worker side of llama.cpp's RPC backend: serve this machine's devices in-process
(`ggml_backend_rpc_start_server`), as llama.cpp's rpc-server does."""

from __future__ import annotations

import ctypes
import os
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from llmcli.engine.rpc import proc, require_rpc
from llmcli.errors import UsageError

# enum ggml_backend_dev_type (ggml-backend.h)
_DEV_CPU, _DEV_GPU, _DEV_IGPU = 0, 1, 2


@dataclass(frozen=True)
class Device:
    name: str
    description: str
    free_mib: int


def _serving_devices(lib: ctypes.CDLL) -> list[int]:
    """As rpc-server chooses: the GPUs when there are any, else the CPU."""
    all_devices = [lib.ggml_backend_dev_get(i) for i in range(lib.ggml_backend_dev_count())]
    gpus = [d for d in all_devices if lib.ggml_backend_dev_type(d) in (_DEV_GPU, _DEV_IGPU)]
    if gpus:
        return gpus
    return [d for d in all_devices if lib.ggml_backend_dev_type(d) == _DEV_CPU][:1]


def describe(lib: ctypes.CDLL, device: int) -> Device:
    # ggml writes both sizes; the worker shows only what is free.
    free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
    lib.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
    return Device(
        name=(lib.ggml_backend_dev_name(device) or b"").decode(errors="replace"),
        description=(lib.ggml_backend_dev_description(device) or b"").decode(errors="replace"),
        free_mib=free.value // 2**20,
    )


def _line_buffer_c_stdout() -> None:
    """The server reports connections with printf: make each line leave at once."""
    try:
        libc = ctypes.CDLL(None)
        stdout = ctypes.c_void_p.in_dll(libc, "stdout")
        libc.setvbuf(stdout, None, 1, 0)  # _IOLBF
    except (OSError, ValueError, AttributeError):
        pass


def _relay_c_stdout(on_line: Callable[[str], None]) -> None:
    """Send what C code prints on fd 1 to `on_line`, line by line, from a thread.

    The worker has no payload for stdout; what the server prints is status."""
    sys.stdout.flush()
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 1)
    os.close(write_fd)
    _line_buffer_c_stdout()

    def pump() -> None:
        with os.fdopen(read_fd, "r", errors="replace") as pipe:
            for line in pipe:
                on_line(line.rstrip("\n"))

    threading.Thread(target=pump, name="rpc-server-log", daemon=True).start()


def start_worker(
    host: str, port: int, threads: int, on_line: Callable[[str], None]
) -> tuple[list[Device], threading.Thread]:
    """Start serving this machine's devices at host:port in a daemon thread (the server
    call never returns); its messages go to `on_line`. The caller waits for a signal."""
    lib, reg = require_rpc()
    start_server = ctypes.CFUNCTYPE(
        None,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_void_p),
    )(proc(lib, reg, "ggml_backend_rpc_start_server"))
    # Fail here, with a clear message, rather than inside the server thread.
    try:
        with socket.create_server((host, port), reuse_port=False):
            pass
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port or --host",
        ) from None
    devices = _serving_devices(lib)
    if not devices:
        raise UsageError("no device to serve: ggml found neither a GPU nor the CPU")
    array = (ctypes.c_void_p * len(devices))(*devices)
    endpoint = f"{host}:{port}".encode()
    _relay_c_stdout(on_line)
    thread = threading.Thread(
        target=start_server,
        args=(endpoint, None, threads, len(devices), array),
        name="rpc-server",
        daemon=True,
    )
    thread.start()
    return [describe(lib, d) for d in devices], thread
