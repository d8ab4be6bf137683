"""numpy's BLAS threads, held to the engine's count while numpy does the engine's work.

OpenBLAS (numpy's wheels) starts a thread per core and splits each product evenly
between them, so, like llama.cpp's threads, every product waits for the slowest. When
other processes keep a core busy the engine runs on fewer threads
(llmcli.tuning.threads); a numpy product beside it should too. Measured with the logit
lens on 2 cores, one of them busy: 1 BLAS thread took the lens from 3.25x to 2.66x a
plain forward pass, and from 6.2x to 4.3x with every position.

Only OpenBLAS is handled, found among the libraries the process has loaded (Linux) or
beside numpy; with any other BLAS nothing changes.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

# The symbol prefixes of OpenBLAS builds: numpy's own (scipy-openblas, 64-bit integers
# or not) and a system library's.
_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("64_", "")


def _loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS libraries in this process: /proc/self/maps on Linux, else
    the folders numpy's wheels keep them in."""
    import numpy

    if sys.platform.startswith("linux"):
        try:
            lines = Path("/proc/self/maps").read_text().splitlines()
        except OSError:
            lines = []
        found = {line.split()[-1] for line in lines if "openblas" in line.lower()}
        if found:
            return sorted(found)
    base = Path(numpy.__file__).parent
    folders = [base.parent / "numpy.libs", base / ".dylibs"]
    return sorted(str(p) for folder in folders for p in folder.glob("*openblas*"))


@cache
def _controls() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    for path in _loaded_openblas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is None or put is None:
                    continue
                get.restype = ctypes.c_int
                get.argtypes = []
                put.restype = None
                put.argtypes = [ctypes.c_int]
                return get, put
    return None


@contextmanager
def blas_threads(threads: int) -> Iterator[None]:
    """numpy's BLAS on `threads` threads inside the block, as it was after."""
    controls = _controls()
    if controls is None:
        yield
        return
    get, put = controls
    before = int(get())
    if before == threads:
        yield
        return
    put(threads)
    try:
        yield
    finally:
        put(before)
