"""One clear line instead of a bare "Illegal instruction" when the engine faults.

A fault inside llama.cpp (SIGILL from an instruction this CPU refuses, SIGSEGV, SIGBUS)
cannot be survived, and Python's own signal handlers cannot catch it: they run between
bytecodes, long after the faulting instruction would have been retried. So a handler is
installed with sigaction(2) itself. It writes a message prepared in advance, records the
setup that crashed so the next run picks another, and exits with a documented code.

Only on Linux, where the layout of `struct sigaction` is known. With LLMCLI_DEBUG set,
Python's faulthandler prints the tracebacks instead.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import sys
from pathlib import Path

from llmcli.config import debug_enabled
from llmcli.errors import ExitCode

FATAL = (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE)
SA_RESETHAND = 0x80000000


class _SigAction(ctypes.Structure):
    # glibc and musl on Linux: handler, a 1024-bit mask, flags, restorer.
    _fields_ = [
        ("handler", ctypes.c_void_p),
        ("mask", ctypes.c_ulong * (1024 // (8 * ctypes.sizeof(ctypes.c_ulong)))),
        ("flags", ctypes.c_int),
        ("restorer", ctypes.c_void_p),
    ]


_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_int)
_state: dict[str, object] = {}


def _on_fault(signum: int) -> None:
    # Runs inside the signal: only writes of prepared bytes, then exit.
    messages = _state.get("messages")
    message = messages.get(signum, b"") if isinstance(messages, dict) else b""
    try:
        os.write(2, message)
        path = _state.get("record_path")
        record = _state.get("record")
        if isinstance(path, str) and isinstance(record, bytes):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, record)
            os.close(fd)
    finally:
        os._exit(ExitCode.ENGINE_CRASH)


_handler = _HANDLER_TYPE(_on_fault)


def message(signum: int, doing: str) -> str:
    name = signal.Signals(signum).name
    what = (signal.strsignal(signum) or name).lower()
    return (
        f"llmcli: error: the llama.cpp engine crashed ({name}, {what}) while {doing}; "
        "the next run will avoid this setup for this model "
        "(`llmcli doctor` shows what it uses; LLMCLI_ENGINE_SETUP overrides it)\n"
    )


def guard(doing: str, record_path: Path | None, record: bytes | None) -> bool:
    """Install the handler (or refresh what it says); False where it cannot be."""
    if debug_enabled():
        faulthandler.enable()
        return False
    _state["messages"] = {int(s): message(s, doing).encode() for s in FATAL}
    if record_path is not None and record is not None:
        try:
            record_path.parent.mkdir(parents=True, exist_ok=True)
            _state["record_path"], _state["record"] = str(record_path), record
        except OSError:
            _state.pop("record_path", None)
    if _state.get("installed"):
        return True
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    action = _SigAction()
    action.handler = ctypes.cast(_handler, ctypes.c_void_p).value
    # A second fault while reporting the first gets the default action: no loop.
    action.flags = SA_RESETHAND
    for sig in FATAL:
        if libc.sigaction(int(sig), ctypes.byref(action), None) != 0:
            return False
    _state["installed"] = True
    return True
