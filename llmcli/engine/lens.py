"""The logit lens: what the model would predict if it stopped after each layer.

Each layer's output (its residual stream, the `l_out-<layer>` nodes) is put through the
model's own final norm and output head. llama.cpp applies those only after the last
layer, so for the others they are applied here, in numpy, with the weights read from
the GGUF (dequantized once). The last layer's row is the engine's own output
(`result_output`, every position asked for): exactly the model's next-token
distribution, the one `llmcli next` shows. The numpy head agrees with it to within the
engine's 8-bit quantization of activations before the output product (about 0.3 in
logits, a few hundredths in probability).

Cost: the head is a float32 product of every layer's rows but the last's (29 x 64 for
SmolLM2 on 64 tokens) by the whole vocabulary (49152 x 576): 105 GFLOP, about 1.1 s on
one core, where the forward pass itself takes about 0.45 s. A table on a terminal shows
only the last positions that fit, so `last_positions` puts only those through the head
(the same numbers for them).

Supported: RMSNorm heads (llama-style; LayerNorm when the GGUF has output_norm.bias),
tied or separate output weights, and Gemma-2-style final logit soft-capping.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcli.engine import capture
from llmcli.engine.blas_threads import blas_threads
from llmcli.engine.model import Model
from llmcli.engine.vocab import Token, describe
from llmcli.errors import ModelInvalidError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_NAME = re.compile(r"l_out-(\d+)$")
# Rows projected at once: bounds the logits held in memory (rows x vocabulary floats,
# 100 MB for SmolLM2); fewer rows per product leave BLAS repacking the weight more often.
CHUNK_ROWS = 512
# Rows whose logits are gone over at once (block maxima, exponentials, their sum): a
# few MB, which stay in the cache between passes.
RANK_ROWS = 16
# Width of the slices whose maxima bound the k-th largest logit from below (see _top_ids).
BLOCK = 64


@dataclass(frozen=True)
class Guess:
    token: Token
    probability: float


@dataclass(frozen=True)
class Lens:
    tokens: tuple[Token, ...]
    # [layer][position]: the likeliest next tokens, likeliest first. The positions are
    # the last len(guesses[0]) of the text: all of them unless fewer were asked for.
    guesses: tuple[tuple[tuple[Guess, ...], ...], ...]

    @property
    def first(self) -> int:
        """The position of the first column of guesses."""
        return len(self.tokens) - (len(self.guesses[0]) if self.guesses else 0)


@dataclass(frozen=True)
class OutputHead:
    """The final norm and output projection, as float32 arrays."""

    norm: npt.NDArray[np.float32]
    norm_bias: npt.NDArray[np.float32] | None
    epsilon: float
    weight: npt.NDArray[np.float32]  # vocabulary x embedding
    softcap: float | None

    def logits(
        self, hidden: npt.NDArray[np.float32], out: npt.NDArray[np.float32] | None = None
    ) -> npt.NDArray[np.float32]:
        """Next-token logits for each row of `hidden` (rows x embedding), written into
        `out` when given (rows x vocabulary): reusing it spares the page faults of a
        fresh 100 MB array per chunk."""
        import numpy as np

        x = hidden.astype(np.float64)
        if self.norm_bias is not None:
            x = x - x.mean(axis=1, keepdims=True)
        x = x / np.sqrt((x * x).mean(axis=1, keepdims=True) + self.epsilon) * self.norm
        if self.norm_bias is not None:
            x = x + self.norm_bias
        # float32 for the big product: BLAS speed, and well inside the engine's own error.
        logits: npt.NDArray[np.float32] = np.matmul(x.astype(np.float32), self.weight.T, out=out)
        if self.softcap:
            np.divide(logits, self.softcap, out=logits)
            np.tanh(logits, out=logits)
            np.multiply(logits, self.softcap, out=logits)
        return logits


def top_k(
    logits: npt.NDArray[np.float32],
    k: int,
    *,
    scratch: npt.NDArray[np.float32] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The k likeliest ids of each row, likeliest first (ties to the lower id, as argmax),
    with their probabilities. Only the k winners are exponentiated in float64; the
    normaliser is a float64 sum of float32 exponentials, exact to about 1e-7.

    The passes over the logits (maxima, exponentials, their sum) go RANK_ROWS rows at a
    time, so that they run in the cache rather than in main memory; `scratch` (at least
    RANK_ROWS x vocabulary) is worked in when given, sparing fresh pages each call."""
    import numpy as np

    rows, vocab = logits.shape
    k = max(1, min(k, vocab))
    starts = np.arange(0, vocab, BLOCK)
    if scratch is None:
        scratch = np.empty((min(rows, RANK_ROWS), vocab), dtype=np.float32)
    peak = np.empty((rows, 1), dtype=np.float32)
    total = np.empty((rows, 1), dtype=np.float64)
    first = np.empty((rows, 1), dtype=np.int64)
    maxima = np.empty((rows, len(starts)), dtype=np.float32)
    for at in range(0, rows, RANK_ROWS):
        part = logits[at : at + RANK_ROWS]
        here = slice(at, at + len(part))
        if k == 1:  # argmax alone: the first of the largest
            first[here, 0] = part.argmax(axis=1)
            peak[here] = np.take_along_axis(part, first[here], axis=1)
        else:
            maxima[here] = np.maximum.reduceat(part, starts, axis=1)
            peak[here] = maxima[here].max(axis=1, keepdims=True)
        shifted = np.subtract(part, peak[here], out=scratch[: len(part)])
        total[here] = np.exp(shifted, out=shifted).sum(axis=1, keepdims=True, dtype=np.float64)
    ids = first if k == 1 else _top_ids(logits, maxima, k)
    best = np.take_along_axis(logits, ids, axis=1).astype(np.float64)
    probs: npt.NDArray[np.float64] = np.exp(best - peak) / total
    return ids, probs


def _top_ids(
    logits: npt.NDArray[np.float32], maxima: npt.NDArray[np.float32], k: int
) -> npt.NDArray[np.int64]:
    """The k largest of each row, ties to the lower id, given the maxima of its blocks
    of BLOCK ids.

    Partitioning every row (argpartition) costs more than the product that made it. But
    take the k blocks with the largest maxima (ties to the lower block): any logit
    outside them is beaten by each of their k maxima (larger, or equal with a lower id),
    so the winners lie inside, k x BLOCK logits per row to rank exactly."""
    import numpy as np

    rows, vocab = logits.shape
    blocks = maxima.shape[1]
    if blocks > k:
        part = np.argpartition(-maxima, k, axis=1)
        chosen = part[:, :k]
        # Where the k-th largest maximum is tied with the next, which of the tied blocks
        # argpartition kept is arbitrary: those rows take the lower blocks by sorting.
        kth = np.take_along_axis(maxima, chosen, axis=1).min(axis=1)
        tied = kth == np.take_along_axis(maxima, part[:, k : k + 1], axis=1)[:, 0]
        if tied.any():
            chosen[tied] = np.argsort(-maxima[tied], axis=1, kind="stable")[:, :k]
    else:
        chosen = np.broadcast_to(np.arange(blocks), (rows, blocks))
    chosen = np.sort(chosen, axis=1)
    cols = (chosen[:, :, None] * BLOCK + np.arange(BLOCK)).reshape(rows, -1)
    values = np.take_along_axis(logits, np.minimum(cols, vocab - 1), axis=1)
    values[cols >= vocab] = -np.inf  # past the end of a short last block
    # Candidates in id order, so a stable sort leaves ties to the lower id.
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    picked: npt.NDArray[np.int64] = np.take_along_axis(cols, order, axis=1).astype(np.int64)
    return picked


def output_head(path: Path) -> OutputHead:
    import numpy as np

    from llmcli.gguf_file.info import read_header, read_tensor

    header = read_header(path)
    names = {t.name for t in header.tensors}
    meta: dict[str, Any] = header.metadata
    arch = meta.get("general.architecture", "")
    if "output_norm.weight" not in names:
        raise ModelInvalidError(f"{path.name} has no output_norm.weight: no logit lens for it")
    epsilon = meta.get(f"{arch}.attention.layer_norm_rms_epsilon")
    if epsilon is None:
        epsilon = meta.get(f"{arch}.attention.layer_norm_epsilon", 1e-5)
    softcap = meta.get(f"{arch}.final_logit_softcapping")
    weight_name = "output.weight" if "output.weight" in names else "token_embd.weight"
    bias = read_tensor(path, "output_norm.bias", header) if "output_norm.bias" in names else None
    return OutputHead(
        norm=np.asarray(read_tensor(path, "output_norm.weight", header), dtype=np.float32),
        norm_bias=bias,
        epsilon=float(epsilon),
        weight=np.ascontiguousarray(read_tensor(path, weight_name, header), dtype=np.float32),
        softcap=float(softcap) if softcap else None,
    )


class _ResidualSink:
    """Every layer's output but the last, whose place the engine's own logits take:
    reduced to their top k as they arrive, so no tokens x vocabulary array is kept."""

    def __init__(self, n_tokens: int, n_layers: int, n_embd: int, k: int, outputs: int) -> None:
        import numpy as np

        self.k = k
        self.last = n_layers - 1
        self.states = np.zeros((n_layers - 1, n_tokens, n_embd), dtype=np.float32)
        self.rows_done = [0] * n_layers
        self.final_ids = np.zeros((outputs, k), dtype=np.int64)
        self.final_probs = np.zeros((outputs, k), dtype=np.float64)
        self.final_done = 0

    def wants(self, name: str) -> bool:
        if name == "result_output":
            return True
        match = _NAME.match(name)
        return match is not None and int(match.group(1)) < self.last

    def take(self, name: str, data: npt.NDArray[np.float32]) -> None:
        if name == "result_output":
            ids, probs = top_k(data.reshape(-1, data.shape[-1]), self.k)
            start = self.final_done
            self.final_ids[start : start + len(ids)] = ids
            self.final_probs[start : start + len(ids)] = probs
            self.final_done = start + len(ids)
            return
        match = _NAME.match(name)
        assert match is not None
        layer = int(match.group(1))
        rows = data.reshape(-1, data.shape[-1])
        start = self.rows_done[layer]
        self.states[layer, start : start + rows.shape[0]] = rows
        self.rows_done[layer] = start + rows.shape[0]


def lens(
    model: Model,
    tokens: Sequence[int],
    *,
    top_k_tokens: int = 5,
    head: OutputHead | None = None,
    limit: int | None = None,
    last_positions: int | None = None,
) -> Lens:
    """The likeliest next tokens, with probabilities, after every layer at every position,
    or at the last `last_positions` only (what a table has room for): the forward pass
    still reads the whole text, but only those positions go through the head."""
    import llama_cpp
    import numpy as np

    raw = model.llama.model
    n_layers = int(llama_cpp.llama_model_n_layer(raw))
    n_tokens = len(tokens)
    shown = n_tokens if last_positions is None else max(1, min(last_positions, n_tokens))
    first = n_tokens - shown
    k = top_k_tokens
    sink = _ResidualSink(n_tokens, n_layers, int(llama_cpp.llama_model_n_embd(raw)), k, shown)
    # Attention as the model's own context computes it: the last row is then exactly
    # the distribution generation samples from.
    flash = model.options.flash_attn
    capture.forward(model, tokens, sink, outputs_from=first, flash_attn=flash, limit=limit)
    head = head or output_head(model.options.path)
    flat = np.ascontiguousarray(sink.states[:, first:]).reshape((n_layers - 1) * shown, -1)
    ids = np.zeros((n_layers * shown, k), dtype=np.int64)
    probs = np.zeros((n_layers * shown, k), dtype=np.float64)
    out = np.empty((min(CHUNK_ROWS, len(flat)), len(head.weight)), dtype=np.float32)
    scratch = np.empty((RANK_ROWS, len(head.weight)), dtype=np.float32)
    with blas_threads(model.threads):
        for start in range(0, len(flat), CHUNK_ROWS):
            logits = head.logits(flat[start : start + CHUNK_ROWS], out=out[: len(flat) - start])
            end = start + len(logits)
            ids[start:end], probs[start:end] = top_k(logits, k, scratch=scratch)
    ids[flat.shape[0] :] = sink.final_ids
    probs[flat.shape[0] :] = sink.final_probs
    vocab = {t.id: t for t in describe(model, sorted({int(i) for i in ids.flat}))}
    guesses = tuple(
        tuple(
            tuple(Guess(vocab[int(i)], float(p)) for i, p in zip(ids[row], probs[row], strict=True))
            for row in range(layer * shown, (layer + 1) * shown)
        )
        for layer in range(n_layers)
    )
    return Lens(tuple(describe(model, tokens)), guesses)
