"""Everything `llmcli explain` shows, measured on the user's own text.

Three evaluations of the text, each the one a single command makes, so that every number
is the one that command gives:
- a capture pass with flash attention off (llmcli.engine.capture) serves all of the
  attention section at once: the `kq_soft_max-*` nodes feed both the overview of every
  head and every layer's maps. Flash attention never materialises these weights;
- a capture pass computed as the model's own context computes (flash attention on)
  serves the logit lens, as `llmcli lens` does. One pass cannot serve both: flash
  attention sums in another order, and on SmolLM2 a middle layer's top guess moved by up
  to 9 points of probability between the two, the final prediction from 78.0% to 76.8%;
- the model's own context gives the next token and the greedy continuation, exactly as
  `llmcli next --steps N` (a continuation needs one decode per token anyway).
For the texts people explain each pass costs little beside loading the model and the
lens's output head (benchmarks/bench_explain.py measures the whole against `next`).

The embedding neighbours use the model's own token embedding table (read from the GGUF,
the same array as the output head when the weights are tied).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmcli.engine import attention, capture, distribution, lens
from llmcli.engine.model import Model
from llmcli.engine.vocab import Token, describe
from llmcli.errors import ContextOverflowError, UsageError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# (temperature, top-p) pairs whose reshaping of the distribution is shown: one sharper,
# one flatter with the tail cut, beside the model's own (temperature 1, top-p 1).
SETTINGS: tuple[tuple[float, float], ...] = ((0.5, 1.0), (1.5, 0.9))
# The distinct tokens whose neighbours are looked up: a page has room for no more.
MAX_NEIGHBOUR_TOKENS = 32
# Texts up to this many tokens keep every head's map of every layer, for the page to
# browse and to pick the clearest head from: layers x heads x tokens^2 floats, 4.4 MB at
# this length for SmolLM2 (30 x 9), and every layer's mean map in the JSON and the page,
# about 0.5 MB there.
MAX_ALL_LAYERS = 64


@dataclass(frozen=True)
class Neighbours:
    token: Token
    # The closest other tokens by cosine similarity of their embedding rows.
    nearest: tuple[tuple[Token, float], ...]


@dataclass(frozen=True)
class Reshaped:
    """The next-token distribution as sampling with these settings would draw from it."""

    temperature: float
    top_p: float
    # Tokens left after top-p (from the model's own probabilities, as llama.cpp does).
    kept: int
    candidates: tuple[tuple[Token, float], ...]


@dataclass(frozen=True)
class Inside:
    tokens: tuple[Token, ...]
    attention: attention.AttentionMaps
    # [layer][key]: what the last token attends to in each layer, heads averaged.
    last_row: npt.NDArray[np.float32]
    # [layer][head][query][key]; None for texts over MAX_ALL_LAYERS tokens.
    head_maps: npt.NDArray[np.float32] | None
    lens: lens.Lens
    steps: tuple[distribution.Step, ...]
    neighbours: tuple[Neighbours, ...]
    reshaped: tuple[Reshaped, ...]


class _EveryLayer:
    """Every layer's attention: the last token's row (heads averaged) always, every
    head's whole map for short texts."""

    def __init__(self, n_tokens: int, shape: attention.Shape) -> None:
        import numpy as np

        self.n = n_tokens
        self.rows_done = [0] * shape.layers
        self.last_row = np.zeros((shape.layers, n_tokens), dtype=np.float32)
        self.maps = (
            np.zeros((shape.layers, shape.heads, n_tokens, n_tokens), dtype=np.float32)
            if n_tokens <= MAX_ALL_LAYERS
            else None
        )

    def wants(self, name: str) -> bool:
        return attention.is_soft_max(name)

    def take(self, name: str, data: npt.NDArray[np.float32]) -> None:
        layer, chunk, start = attention.soft_max_rows(name, data, self.n, self.rows_done)
        rows = chunk.shape[1]
        if self.maps is not None:
            self.maps[layer, :, start : start + rows] = chunk
        if start + rows == self.n:
            self.last_row[layer] = chunk[:, -1].mean(axis=0)


class _Both:
    """Several sinks fed by one pass: each node goes to whichever wants it."""

    def __init__(self, *sinks: capture.Sink) -> None:
        self.sinks = sinks

    def wants(self, name: str) -> bool:
        return any(sink.wants(name) for sink in self.sinks)

    def take(self, name: str, data: npt.NDArray[np.float32]) -> None:
        for sink in self.sinks:
            if sink.wants(name):
                sink.take(name, data)


def check_length(n_tokens: int, limit: int) -> None:
    """Clear errors before any work: no tokens, or more than can be looked inside."""
    if n_tokens == 0:
        raise UsageError("the text has no tokens: give at least one word")
    if n_tokens > limit:
        raise ContextOverflowError(
            f"the text is {n_tokens} tokens; at most {limit} can be looked inside at once",
            hint=f"raise --ctx to {n_tokens} or shorten the text",
        )


def look_inside(
    model: Model,
    tokens: Sequence[int],
    *,
    limit: int,
    layer: int | None = None,
    lens_positions: int | None = None,
    top_k: int = 5,
    steps: int = 5,
    neighbours: int = 5,
) -> Inside:
    """The attention maps of `layer` (default: the middle one) with every head's overview,
    the lens at the last `lens_positions` (default all), the top `top_k` next tokens and
    a greedy continuation of `steps` tokens, and each distinct token's nearest
    `neighbours` in the embedding table."""
    check_length(len(tokens), limit)
    shape = attention.model_shape(model)
    chosen = attention.check_choice(shape, layer, None)
    n = len(tokens)
    shown = n if lens_positions is None else max(1, min(lens_positions, n))
    seen = attention.AttentionSink(n, chosen, shape)
    every = _EveryLayer(n, shape)
    capture.forward(model, tokens, _Both(seen, every), limit=limit)
    head = lens.output_head(model.options.path)
    found_lens = lens.lens(
        model, tokens, top_k_tokens=top_k, head=head, limit=limit, last_positions=shown
    )
    maps = attention.maps_from(model, tokens, seen, shape)

    logits: list[npt.NDArray[np.float32]] = []
    found_steps = distribution.next_tokens(
        model, tokens, k=top_k, steps=steps, on_logits=logits.append
    )
    reshaped = tuple(_reshape(model, logits[0], t, p, top_k) for t, p in SETTINGS)
    table = _embedding_table(model, head)
    near = _neighbours(model, table, tokens, neighbours)
    return Inside(
        tokens=maps.tokens,
        attention=maps,
        last_row=every.last_row,
        head_maps=every.maps,
        lens=found_lens,
        steps=tuple(found_steps),
        neighbours=near,
        reshaped=reshaped,
    )


def _reshape(
    model: Model, logits: npt.NDArray[np.float32], temperature: float, top_p: float, k: int
) -> Reshaped:
    """llama.cpp's order: top-p keeps the fewest likeliest tokens whose probabilities
    reach `top_p`, then the temperature divides the logits of those left."""
    import numpy as np

    probs = distribution.softmax(logits)
    order = np.argsort(-probs, kind="stable")
    cumulative = np.cumsum(probs[order])
    kept = len(order) if top_p >= 1.0 else int(np.searchsorted(cumulative, top_p)) + 1
    survivors = order[:kept]
    scaled = distribution.softmax(logits[survivors] / np.float32(temperature))
    ids = [int(i) for i in survivors[:k]]
    chosen = describe(model, ids)
    return Reshaped(
        temperature,
        top_p,
        kept,
        tuple((token, float(p)) for token, p in zip(chosen, scaled[:k], strict=True)),
    )


def _embedding_table(model: Model, head: lens.OutputHead) -> npt.NDArray[np.float32]:
    """The token embedding rows: the output head's own array when the weights are tied."""
    from llmcli.gguf_file.info import read_header, read_tensor

    path = model.options.path
    header = read_header(path)
    if "output.weight" not in {t.name for t in header.tensors}:
        return head.weight
    table: npt.NDArray[np.float32] = read_tensor(path, "token_embd.weight", header)
    return table


def _neighbours(
    model: Model, table: npt.NDArray[np.float32], tokens: Sequence[int], k: int
) -> tuple[Neighbours, ...]:
    import numpy as np

    distinct = list(dict.fromkeys(int(t) for t in tokens))[:MAX_NEIGHBOUR_TOKENS]
    norms = np.sqrt(np.einsum("ij,ij->i", table, table, dtype=np.float64)).astype(np.float32)
    norms[norms == 0] = 1.0
    rows = table[distinct]
    similarity = (rows @ table.T) / np.outer(norms[distinct], norms)
    similarity[np.arange(len(distinct)), distinct] = -np.inf  # a token is not its own neighbour
    found = []
    for row, token in zip(similarity, describe(model, distinct), strict=True):
        best = np.argpartition(-row, k)[:k]
        best = best[np.argsort(-row[best], kind="stable")]
        near = describe(model, [int(i) for i in best])
        found.append(Neighbours(token, tuple((t, float(row[t.id])) for t in near)))
    return tuple(found)
