"""Keep llama.cpp's own log off stderr unless --verbose asked for it.

The bindings filter the log by level, but their table predates llama.cpp renumbering its
levels, so warnings pass as errors while a context is created (e.g. "n_ctx_seq (64) >
n_ctx_train (0)" for a vocabulary-only load, "model default pooling_type is [-1]" for
embeddings). llmcli reports failures itself, so without --verbose nothing is shown.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import llama_cpp

_verbose = False
# Readers of the whole log, whatever --verbose says (the probe child reads which weight
# buffers a load created).
_listeners: list[Callable[[str], None]] = []


@llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
def _forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    if not text:
        return
    decoded = text.decode("utf-8", errors="replace")
    for listener in _listeners:
        listener(decoded)
    if _verbose:
        sys.stderr.write(decoded)
        sys.stderr.flush()


def listen(listener: Callable[[str], None]) -> None:
    _listeners.append(listener)


@contextmanager
def listening(listener: Callable[[str], None]) -> Iterator[None]:
    """`listener` hears the whole log while the block runs."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def quiet_engine_log(verbose: bool) -> None:
    """Install the filter (idempotent); the callback object lives as long as the module."""
    global _verbose
    _verbose = verbose
    llama_cpp.llama_log_set(_forward, ctypes.c_void_p(0))


def quiet_media_log(verbose: bool) -> None:
    """The same filter for llama.cpp's mtmd library (projectors), which logs on its own:
    every image it encodes otherwise prints several lines."""
    from llama_cpp import mtmd_cpp

    quiet_engine_log(verbose)
    mtmd_cpp.mtmd_log_set(_forward, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_helper_log_set(_forward, ctypes.c_void_p(0))
