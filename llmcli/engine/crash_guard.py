"""One clear line instead of a bare "Illegal instruction" when the engine faults.

A fault inside llama.cpp (SIGILL from an instruction this CPU refuses, SIGSEGV, SIGBUS)
cannot be survived, and Python's own signal handlers cannot catch it: they run between
bytecodes, long after the faulting instruction would have been retried. So a handler is
installed with sigaction(2) itself. It writes a message prepared in advance, records the
setup that crashed so the next run picks another, and exits with a documented code.
A setup is blamed only for a fault inside the engine's own work (loading the weights,
evaluating tokens: `evaluating()`): a fault at shutdown or in some other library says
so, and leaves the record alone, so that one damaged process cannot steer every later run
away from a setup that works.

With RPC workers in use (--rpc), llama.cpp aborts the process (SIGABRT) when a worker
goes away; that is reported as the worker lost, with its own exit code, and recorded
against no setup.

Only on Linux, where the layout of `struct sigaction` is known. With LLMCLI_DEBUG set,
Python's faulthandler prints the tracebacks instead.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import sys
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from llmcli.config import debug_enabled
from llmcli.errors import ExitCode

FATAL = (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE)
SA_RESETHAND = 0x80000000
T = TypeVar("T")


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


class _Evaluating:
    """Counts the blocks of engine work in progress; a plain class rather than a
    generator-based context manager, since it wraps every token's evaluation."""

    depth = 0

    def __enter__(self) -> None:
        _Evaluating.depth += 1

    def __exit__(self, *exc: object) -> None:
        _Evaluating.depth -= 1


def evaluating() -> _Evaluating:
    """A block of the engine's own work (loading, evaluating): a fault inside it is
    recorded against the engine setup in use."""
    return _EVALUATING


_EVALUATING = _Evaluating()


def throughout(items: Iterator[T]) -> Generator[T, None, None]:
    """`items` with the engine's work in progress from the first item to the generator's
    end: a fault between two evaluations of one answer is the engine's too."""
    with _EVALUATING:
        yield from items


def _on_fault(signum: int) -> None:
    # Runs inside the signal: only writes of prepared bytes, then exit.
    blamed = _Evaluating.depth > 0
    lost_worker = signum == signal.SIGABRT
    messages = _state.get("messages" if blamed or lost_worker else "elsewhere")
    message = messages.get(signum, b"") if isinstance(messages, dict) else b""
    try:
        os.write(2, message)
        path = _state.get("record_path")
        record = _state.get("record")
        if lost_worker:
            os._exit(ExitCode.WORKER_LOST)
        if blamed and isinstance(path, str) and isinstance(record, bytes):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, record)
            os.close(fd)
    finally:
        os._exit(ExitCode.ENGINE_CRASH)


_handler = _HANDLER_TYPE(_on_fault)


def _signal_words(signum: int) -> str:
    """`SIGSEGV, segmentation fault`."""
    name = signal.Signals(signum).name
    return f"{name}, {(signal.strsignal(signum) or name).lower()}"


def message(signum: int, doing: str) -> str:
    return (
        f"llmcli: error: the llama.cpp engine crashed ({_signal_words(signum)}) while {doing}; "
        "the next run will avoid this setup for this model "
        "(`llmcli doctor` shows what it uses; LLMCLI_ENGINE_SETUP overrides it)\n"
    )


def elsewhere_message(signum: int, doing: str) -> str:
    return (
        f"llmcli: error: the process crashed ({_signal_words(signum)}) after {doing}, "
        "outside the "
        "engine's loading and evaluation (at shutdown or in another library); no engine "
        "setup is blamed for it (LLMCLI_DEBUG=1 shows where it happened)\n"
    )


def worker_lost_message(workers: Sequence[str]) -> str:
    which = ", ".join(workers)
    return (
        f"llmcli: error: lost the RPC worker ({which}): it stopped, crashed or became "
        "unreachable, and llama.cpp cannot continue without it; what was answered so far "
        "was kept (restart `llmcli worker` there, or run without --rpc)\n"
    )


@contextmanager
def abort_says(text: str) -> Iterator[None]:
    """While the block runs, an abort (with RPC workers in use) prints `text` instead."""
    messages = _state.get("messages")
    if not isinstance(messages, dict):
        yield
        return
    key = int(signal.SIGABRT)
    before = messages.get(key)
    messages[key] = text.encode()
    try:
        yield
    finally:
        if before is None:
            messages.pop(key, None)
        else:
            messages[key] = before


def guard(
    doing: str,
    record_path: Path | None,
    record: bytes | None,
    *,
    rpc_workers: Sequence[str] = (),
) -> bool:
    """Install the handler (or refresh what it says); False where it cannot be.

    With `rpc_workers`, an abort is reported as the loss of one of them."""
    if debug_enabled():
        faulthandler.enable()
        return False
    messages = {int(s): message(s, doing).encode() for s in FATAL}
    _state["elsewhere"] = {int(s): elsewhere_message(s, doing).encode() for s in FATAL}
    if rpc_workers:
        messages[int(signal.SIGABRT)] = worker_lost_message(rpc_workers).encode()
    _state["messages"] = messages
    if record_path is not None and record is not None:
        try:
            record_path.parent.mkdir(parents=True, exist_ok=True)
            _state["record_path"], _state["record"] = str(record_path), record
        except OSError:
            _state.pop("record_path", None)
    if _state.get("installed"):
        return _guard_aborts() if rpc_workers else True
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
    _state["libc"], _state["action"] = libc, action
    if rpc_workers:
        return _guard_aborts()
    return True


def _guard_aborts() -> bool:
    if _state.get("aborts"):
        return True
    libc, action = _state.get("libc"), _state.get("action")
    if not isinstance(libc, ctypes.CDLL) or not isinstance(action, _SigAction):
        return False
    if libc.sigaction(int(signal.SIGABRT), ctypes.byref(action), None) != 0:
        return False
    _state["aborts"] = True
    return True
