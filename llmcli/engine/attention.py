"""Attention weights of a real forward pass, and what each head tends to look at.

The weights are llama.cpp's own `kq_soft_max-<layer>` nodes: for each head, each query
token's softmax over the key positions (future positions are masked to exactly 0).
The engine pads the key axis (to 256 cells); only the first n columns are tokens.

One layer's maps are kept whole. Every other layer is reduced as it arrives to three
numbers per head (how much each token gives the previous token, the first token and
itself), so the overview of all heads costs no more memory than one layer's map.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import llama_cpp

from llmcli.engine import capture
from llmcli.engine.model import Model
from llmcli.engine.vocab import Token, describe
from llmcli.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

HeadKind = Literal["previous", "first", "self", "mixed"]
# A head is called a previous-token (first-token, self) head when, on average, a token
# gives that position more than this share of its attention.
KIND_THRESHOLD = 0.5
_NAME = re.compile(r"kq_soft_max-(\d+)$")


def is_soft_max(name: str) -> bool:
    """Whether a graph node holds a layer's attention probabilities."""
    return _NAME.match(name) is not None


def soft_max_rows(
    name: str, data: npt.NDArray[np.float32], n_tokens: int, rows_done: list[int]
) -> tuple[int, npt.NDArray[np.float32], int]:
    """A captured `kq_soft_max-<layer>` node as (layer, its rows over the token columns,
    the position of its first row). A prompt longer than a micro-batch arrives as several
    nodes per layer: `rows_done` counts the rows each layer has had, and is advanced."""
    match = _NAME.match(name)
    assert match is not None
    layer = int(match.group(1))
    # [1, heads, rows of this micro-batch, padded key cells] -> the token columns.
    chunk = data.reshape(data.shape[-3:])[:, :, :n_tokens]
    start = rows_done[layer]
    rows_done[layer] = start + chunk.shape[1]
    return layer, chunk, start


@dataclass(frozen=True)
class Shape:
    layers: int
    heads: int
    kv_heads: int


@dataclass(frozen=True)
class HeadSummary:
    """Average attention a token gives to the previous token, the first token and itself
    (tokens from the third on, so the three never coincide)."""

    layer: int
    head: int
    previous: float
    first: float
    self: float

    @property
    def kind(self) -> HeadKind:
        shares: dict[HeadKind, float] = {
            "previous": self.previous,
            "first": self.first,
            "self": self.self,
        }
        best = max(shares, key=lambda k: shares[k])
        return best if shares[best] > KIND_THRESHOLD else "mixed"


@dataclass(frozen=True)
class AttentionMaps:
    tokens: tuple[Token, ...]
    shape: Shape
    layer: int
    # Per head of `layer`: query tokens (rows) x key tokens (columns).
    weights: npt.NDArray[np.float32]
    overview: tuple[HeadSummary, ...]

    def head(self, head: int) -> npt.NDArray[np.float32]:
        result: npt.NDArray[np.float32] = self.weights[head]
        return result

    def mean(self) -> npt.NDArray[np.float32]:
        result: npt.NDArray[np.float32] = self.weights.mean(axis=0)
        return result


def model_shape(model: Model) -> Shape:
    raw = model.llama.model
    return Shape(
        layers=int(llama_cpp.llama_model_n_layer(raw)),
        heads=int(llama_cpp.llama_model_n_head(raw)),
        kv_heads=int(llama_cpp.llama_model_n_head_kv(raw)),
    )


def check_choice(shape: Shape, layer: int | None, head: int | None) -> int:
    """The layer to map (default: the middle one); UsageError for one that does not exist."""
    if layer is None:
        layer = shape.layers // 2
    if not 0 <= layer < shape.layers:
        raise UsageError(f"no layer {layer}: this model has layers 0 to {shape.layers - 1}")
    if head is not None and not 0 <= head < shape.heads:
        raise UsageError(f"no head {head}: this model has heads 0 to {shape.heads - 1}")
    return layer


class AttentionSink:
    """Keeps `layer`'s maps whole and reduces every layer to the overview's three numbers."""

    def __init__(self, n_tokens: int, layer: int, shape: Shape) -> None:
        import numpy as np

        self.n = n_tokens
        self.layer = layer
        self.weights = np.zeros((shape.heads, n_tokens, n_tokens), dtype=np.float32)
        self.rows_done = [0] * shape.layers
        self.sums = np.zeros((shape.layers, 3, shape.heads), dtype=np.float64)

    def wants(self, name: str) -> bool:
        return is_soft_max(name)

    def take(self, name: str, data: npt.NDArray[np.float32]) -> None:
        import numpy as np

        layer, chunk, start = soft_max_rows(name, data, self.n, self.rows_done)
        rows = chunk.shape[1]
        if layer == self.layer:
            self.weights[:, start : start + rows, :] = chunk
        positions = np.arange(start, start + rows)
        keep = positions >= 2
        if not keep.any():
            return
        at = positions[keep]
        picked = chunk[:, keep, :]
        index = np.arange(picked.shape[1])
        self.sums[layer, 0] += picked[:, index, at - 1].sum(axis=1)
        self.sums[layer, 1] += picked[:, index, 0].sum(axis=1)
        self.sums[layer, 2] += picked[:, index, at].sum(axis=1)

    def overview(self) -> tuple[HeadSummary, ...]:
        counted = max(1, self.n - 2)
        means = self.sums / counted
        return tuple(
            HeadSummary(
                layer,
                head,
                float(means[layer, 0, head]),
                float(means[layer, 1, head]),
                float(means[layer, 2, head]),
            )
            for layer in range(means.shape[0])
            for head in range(means.shape[2])
        )


def attention(
    model: Model,
    tokens: Sequence[int],
    *,
    layer: int | None = None,
    head: int | None = None,
    limit: int | None = None,
) -> AttentionMaps:
    """The attention maps of `layer` (every head) for `tokens`, and an overview of every
    head of every layer."""
    shape = model_shape(model)
    chosen = check_choice(shape, layer, head)
    sink = AttentionSink(len(tokens), chosen, shape)
    capture.forward(model, tokens, sink, limit=limit)
    return maps_from(model, tokens, sink, shape)


def maps_from(
    model: Model, tokens: Sequence[int], sink: AttentionSink, shape: Shape
) -> AttentionMaps:
    """The maps a forward pass left in `sink`."""
    return AttentionMaps(
        tokens=tuple(describe(model, tokens)),
        shape=shape,
        layer=sink.layer,
        weights=sink.weights,
        overview=sink.overview(),
    )
