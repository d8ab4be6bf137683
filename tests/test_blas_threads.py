"""numpy's BLAS thread count is held for a block and given back after it."""

from __future__ import annotations

import pytest

from llmcli.engine import blas_threads


def test_the_count_is_held_inside_and_restored_after() -> None:
    controls = blas_threads._controls()
    if controls is None:
        pytest.skip("numpy's BLAS here is not OpenBLAS")
    get, _ = controls
    before = get()
    other = 1 if before != 1 else 2
    with blas_threads.blas_threads(other):
        assert get() == other
    assert get() == before
    with pytest.raises(RuntimeError), blas_threads.blas_threads(other):
        raise RuntimeError("the block failed")
    assert get() == before
