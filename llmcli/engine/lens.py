"""The logit lens: what the model would predict if it stopped after each layer.

Each layer's output (its residual stream, the `l_out-<layer>` nodes) is put through the
model's own final norm and output head. llama.cpp applies those only after the last
layer, so for the others they are applied here, in numpy, with the weights read from
the GGUF (dequantized once). The last layer's row is the engine's own output
(`result_output`, every position asked for): exactly the model's next-token
distribution, the one `llmcli next` shows. The numpy head agrees with it to within the
engine's 8-bit quantization of activations before the output product (about 0.3 in
logits, a few hundredths in probability).

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
from llmcli.engine.model import Model
from llmcli.engine.vocab import Token, describe
from llmcli.errors import ModelInvalidError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_NAME = re.compile(r"l_out-(\d+)$")
# Rows projected at once: bounds the logits held in memory (rows x vocabulary floats).
CHUNK_ROWS = 256


@dataclass(frozen=True)
class Guess:
    token: Token
    probability: float


@dataclass(frozen=True)
class Lens:
    tokens: tuple[Token, ...]
    # [layer][position]: the likeliest next tokens, likeliest first.
    guesses: tuple[tuple[tuple[Guess, ...], ...], ...]


@dataclass(frozen=True)
class OutputHead:
    """The final norm and output projection, as float32 arrays."""

    norm: npt.NDArray[np.float32]
    norm_bias: npt.NDArray[np.float32] | None
    epsilon: float
    weight: npt.NDArray[np.float32]  # vocabulary x embedding
    softcap: float | None

    def logits(self, hidden: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Next-token logits for each row of `hidden` (rows x embedding)."""
        import numpy as np

        x = hidden.astype(np.float64)
        if self.norm_bias is not None:
            x = x - x.mean(axis=1, keepdims=True)
        x = x / np.sqrt((x * x).mean(axis=1, keepdims=True) + self.epsilon) * self.norm
        if self.norm_bias is not None:
            x = x + self.norm_bias
        # float32 for the big product: BLAS speed, and well inside the engine's own error.
        logits: npt.NDArray[np.float32] = x.astype(np.float32) @ self.weight.T
        if self.softcap:
            logits = (self.softcap * np.tanh(logits / self.softcap)).astype(np.float32)
        return logits


def top_k(
    logits: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The k likeliest ids of each row, likeliest first (ties to the lower id, as argmax),
    with their probabilities. Only the k winners are exponentiated in float64; the
    normaliser is a float32 sum, exact to about 1e-7."""
    import numpy as np

    k = max(1, min(k, logits.shape[1]))
    peak = logits.max(axis=1, keepdims=True)
    total = np.exp(logits - peak).sum(axis=1, keepdims=True, dtype=np.float64)
    part = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(logits, part, axis=1)
    order = np.lexsort((part, -values), axis=1)
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    best = np.take_along_axis(values, order, axis=1).astype(np.float64)
    probs: npt.NDArray[np.float64] = np.exp(best - peak) / total
    return ids, probs


def output_head(path: Path) -> OutputHead:
    import numpy as np

    from llmcli.gguf_info import read_header, read_tensor

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
    bias = read_tensor(path, "output_norm.bias") if "output_norm.bias" in names else None
    return OutputHead(
        norm=np.asarray(read_tensor(path, "output_norm.weight"), dtype=np.float32),
        norm_bias=bias,
        epsilon=float(epsilon),
        weight=np.ascontiguousarray(read_tensor(path, weight_name), dtype=np.float32),
        softcap=float(softcap) if softcap else None,
    )


class _ResidualSink:
    """Every layer's output but the last, whose place the engine's own logits take:
    reduced to their top k as they arrive, so no tokens x vocabulary array is kept."""

    def __init__(self, n_tokens: int, n_layers: int, n_embd: int, k: int) -> None:
        import numpy as np

        self.k = k
        self.last = n_layers - 1
        self.states = np.zeros((n_layers - 1, n_tokens, n_embd), dtype=np.float32)
        self.rows_done = [0] * n_layers
        self.final_ids = np.zeros((n_tokens, k), dtype=np.int64)
        self.final_probs = np.zeros((n_tokens, k), dtype=np.float64)
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
) -> Lens:
    """The likeliest next tokens, with probabilities, after every layer at every position."""
    import llama_cpp
    import numpy as np

    raw = model.llama.model
    n_layers = int(llama_cpp.llama_model_n_layer(raw))
    n_tokens = len(tokens)
    k = top_k_tokens
    sink = _ResidualSink(n_tokens, n_layers, int(llama_cpp.llama_model_n_embd(raw)), k)
    # Attention as the model's own context computes it: the last row is then exactly
    # the distribution generation samples from.
    flash = model.options.flash_attn
    capture.forward(model, tokens, sink, all_outputs=True, flash_attn=flash, limit=limit)
    head = head or output_head(model.options.path)
    flat = sink.states.reshape((n_layers - 1) * n_tokens, -1)
    ids = np.zeros((n_layers * n_tokens, k), dtype=np.int64)
    probs = np.zeros((n_layers * n_tokens, k), dtype=np.float64)
    for start in range(0, flat.shape[0], CHUNK_ROWS):
        chunk_ids, chunk_probs = top_k(head.logits(flat[start : start + CHUNK_ROWS]), k)
        ids[start : start + len(chunk_ids)] = chunk_ids
        probs[start : start + len(chunk_ids)] = chunk_probs
    ids[flat.shape[0] :] = sink.final_ids
    probs[flat.shape[0] :] = sink.final_probs
    vocab = {t.id: t for t in describe(model, sorted({int(i) for i in ids.flat}))}
    guesses = tuple(
        tuple(
            tuple(Guess(vocab[int(i)], float(p)) for i, p in zip(ids[row], probs[row], strict=True))
            for row in range(layer * n_tokens, (layer + 1) * n_tokens)
        )
        for layer in range(n_layers)
    )
    return Lens(tuple(describe(model, tokens)), guesses)
