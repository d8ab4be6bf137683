"""Splitting a model across machines with llama.cpp's RPC backend.

A worker (`llmcli worker`) serves its machine's CPU or GPU over TCP; a client registers
each worker as a device before the model loads, and llama.cpp spreads the layers over
every device it knows, as `llama-cli --rpc` does (common/arg.cpp, add_rpc_devices).

The RPC backend is reached through ggml's own registry, in the very library instance
libllama uses: the wheel ships `libggml.so`, `.so.0` and `.so.0.x` as copies, not links,
and libllama loads `.so.0`. Opening another name would load a second ggml with its own
device registry, and the devices registered there would be silently unused.

Only llama.cpp builds made with `-DGGML_RPC=on` have the backend.
"""

from __future__ import annotations

import ctypes
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp

from llmcli.diagnostics import RPC_INSTALL
from llmcli.engine import crash_guard
from llmcli.engine.log import listening
from llmcli.errors import UsageError, WorkerLostError

CONNECT_TIMEOUT_S = 5.0

# enum ggml_backend_dev_type (ggml-backend.h)
_DEV_CPU, _DEV_GPU, _DEV_IGPU = 0, 1, 2

_registered: set[str] = set()
_lock = threading.Lock()


class RpcUnavailableError(UsageError):
    """This llama.cpp build has no RPC backend."""

    def __init__(self) -> None:
        super().__init__(
            "this llama.cpp build has no RPC backend",
            hint=f"reinstall it with RPC: {RPC_INSTALL}",
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


def _proc(lib: ctypes.CDLL, reg: int, name: str) -> int:
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
        _proc(lib, reg, "ggml_backend_rpc_add_server")
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


# -- how a load was split ----------------------------------------------------------------


@dataclass
class SplitReport:
    """Where llama.cpp put the model, read from its load log."""

    offloaded: str = ""  # "30/31 layers"
    weights_mib: dict[str, float] = field(default_factory=dict)  # device -> MiB
    kv_mib: dict[str, float] = field(default_factory=dict)
    layers: dict[str, int] = field(default_factory=dict)  # device -> layers assigned
    described: dict[str, str] = field(default_factory=dict)  # device -> e.g. its endpoint

    def devices(self) -> list[dict[str, Any]]:
        names = sorted(set(self.weights_mib) | set(self.kv_mib) | set(self.layers))
        return [
            {
                "device": name,
                "description": self.described.get(name, ""),
                "layers": self.layers.get(name),
                "weights_mib": round(self.weights_mib.get(name, 0.0), 2),
                "kv_cache_mib": round(self.kv_mib.get(name, 0.0), 2),
            }
            for name in names
        ]

    def as_dict(self) -> dict[str, Any]:
        return {"offloaded": self.offloaded, "devices": self.devices()}

    def line(self) -> str:
        parts = []
        for entry in self.devices():
            layers = f"{entry['layers']} layers, " if entry["layers"] is not None else ""
            about = f" ({entry['description']})" if entry["description"] else ""
            parts.append(
                f"{entry['device']}{about}: {layers}{entry['weights_mib']:.0f} MiB weights, "
                f"{entry['kv_cache_mib']:.0f} MiB KV"
            )
        offloaded = f" ({self.offloaded} layers offloaded)" if self.offloaded else ""
        return f"split over {len(parts)} devices{offloaded}: " + "; ".join(parts)


_OFFLOADED = re.compile(r"offloaded (\d+/\d+) layers")
_MODEL_BUF = re.compile(r"load_tensors:\s+(\S.*?) model buffer size =\s+([\d.]+) MiB")
_KV_BUF = re.compile(r"llama_kv_cache:\s+(\S.*?) KV buffer size =\s+([\d.]+) MiB")
_LAYER = re.compile(r"load_tensors: layer\s+(\d+) assigned to device ([^,\s]+)")
_USING = re.compile(r"using device (\S+) \((.*?)\)")


def _device(name: str) -> str:
    """ "RPC0[127.0.0.1:50052]" and "CPU_Mapped" -> "RPC0" and "CPU"."""
    name = name.partition("[")[0]
    for suffix in ("_Mapped", "_REPACK"):
        name = name.removesuffix(suffix)
    return name


def _buffer_device(report: SplitReport, name: str) -> str:
    """Buffers name a worker's device by its index on that worker and its endpoint
    ("RPC0[host:port]"); the device list numbers them across workers ("RPC1")."""
    endpoint = name.partition("[")[2].rstrip("]")
    for device, description in report.described.items():
        if endpoint and description == endpoint:
            return device
    return _device(name)


def _read_line(report: SplitReport, line: str) -> None:
    """One line of llama.cpp's load log (the layer lines include the output layer)."""
    if m := _OFFLOADED.search(line):
        report.offloaded = m.group(1)
    elif m := _MODEL_BUF.search(line):
        device = _buffer_device(report, m.group(1))
        report.weights_mib[device] = report.weights_mib.get(device, 0.0) + float(m.group(2))
    elif m := _KV_BUF.search(line):
        device = _buffer_device(report, m.group(1))
        report.kv_mib[device] = report.kv_mib.get(device, 0.0) + float(m.group(2))
    elif m := _LAYER.search(line):
        device = _device(m.group(2))
        report.layers[device] = report.layers.get(device, 0) + 1
    elif m := _USING.search(line):
        report.described[_device(m.group(1))] = m.group(2)


@contextmanager
def split_recorded() -> Iterator[SplitReport]:
    """Collect how the load that runs inside this block was split over devices."""
    report = SplitReport()
    pending = [""]

    def hear(text: str) -> None:
        # The log arrives in pieces; lines are read once complete.
        pending[0] += text
        *lines, pending[0] = pending[0].split("\n")
        for line in lines:
            _read_line(report, line)

    with listening(hear):
        yield report
    if pending[0]:
        _read_line(report, pending[0])


# -- the worker --------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    name: str
    description: str
    free_mib: int
    total_mib: int


def _serving_devices(lib: ctypes.CDLL) -> list[int]:
    """As rpc-server chooses: the GPUs when there are any, else the CPU."""
    all_devices = [lib.ggml_backend_dev_get(i) for i in range(lib.ggml_backend_dev_count())]
    gpus = [d for d in all_devices if lib.ggml_backend_dev_type(d) in (_DEV_GPU, _DEV_IGPU)]
    if gpus:
        return gpus
    return [d for d in all_devices if lib.ggml_backend_dev_type(d) == _DEV_CPU][:1]


def describe(lib: ctypes.CDLL, device: int) -> Device:
    free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
    lib.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
    return Device(
        name=(lib.ggml_backend_dev_name(device) or b"").decode(errors="replace"),
        description=(lib.ggml_backend_dev_description(device) or b"").decode(errors="replace"),
        free_mib=free.value // 2**20,
        total_mib=total.value // 2**20,
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
    )(_proc(lib, reg, "ggml_backend_rpc_start_server"))
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
