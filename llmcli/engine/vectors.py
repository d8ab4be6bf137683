"""Embeddings (one vector per text) and their cosine similarities.

Generative GGUFs declare no pooling, and llama.cpp then returns one vector per token;
for them the token vectors are averaged (mean pooling). Embedding models declare how
they pool (CLS token, last token, mean) and that choice is kept. Embedding needs its own
`Llama(embedding=True)`: `embed()` clears the KV cache, so it is never shared with chat.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from llmcli.engine import crash_guard
from llmcli.engine.model import Model
from llmcli.engine.types import LoadOptions
from llmcli.errors import ContextOverflowError, UsageError
from llmcli.gguf_file.header import read_header


class EmptyTextError(UsageError):
    """A text of no tokens, which has no vector."""


# llama.cpp's enum llama_pooling_type: 0 none, 1 mean, 2 cls, 3 last, 4 rank.
_POOLING_NONE = 0


def pooling_for(path: Path) -> Literal["mean", "model"]:
    """The model's own pooling when its GGUF declares one, else mean pooling."""
    meta = read_header(path).metadata
    arch = meta.get("general.architecture")
    declared = meta.get(f"{arch}.pooling_type")
    if isinstance(declared, int) and declared != _POOLING_NONE:
        return "model"
    return "mean"


def load_embedder(
    path: Path,
    *,
    n_ctx: int,
    n_threads: int | None = None,
    n_gpu_layers: int | None = None,
    verbose: bool = False,
    notify: Callable[[str], None] | None = None,
) -> Model:
    # One batch must hold a whole text: encoder models see all of it at once, and the
    # bindings would otherwise cut longer texts silently.
    return Model(
        LoadOptions(
            path=path,
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_threads=n_threads,
            n_gpu_layers=n_gpu_layers,
            embedding=True,
            pooling=pooling_for(path),
            verbose=verbose,
        ),
        notify=notify,
    )


def embed(model: Model, texts: Sequence[str], *, normalize: bool = False) -> list[list[float]]:
    """One vector per text, optionally scaled to length 1."""
    for text in texts:
        # The bindings mark the last token of each text for output by index, so a text
        # of no tokens writes before their buffer and corrupts the heap: refused here.
        if not model.llama.tokenize(text.encode("utf-8")):
            raise EmptyTextError("an empty text has no embedding: give at least one word")
        n = len(model.tokenize(text))
        if n > model.n_ctx:
            raise ContextOverflowError(
                f"a text is {n} tokens but the context window holds {model.n_ctx}",
                hint=f"raise it with --ctx {n}",
            )
    vectors: list[list[float]] = []
    # One text per call: results then never depend on which texts share a batch.
    for text in texts:
        with crash_guard.evaluating():
            result = model.llama.embed([text], normalize=False, truncate=False)
        vector = [float(x) for x in result[0]]
        vectors.append(unit(vector) if normalize else vector)
    return vectors


def unit(vector: Sequence[float]) -> list[float]:
    """The vector scaled to length 1 (a zero vector stays zero)."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else list(vector)


def cosine_matrix(vectors: Sequence[Sequence[float]]) -> list[list[float]]:
    """Cosine similarity of every pair: symmetric, with exactly 1 on the diagonal
    (each pair is computed once and mirrored, so rounding cannot break symmetry)."""
    units = [unit(v) for v in vectors]
    n = len(units)
    matrix = [[1.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            value = math.fsum(a * b for a, b in zip(units[i], units[j], strict=True))
            matrix[i][j] = matrix[j][i] = max(-1.0, min(1.0, value))
    return matrix
