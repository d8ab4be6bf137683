"""The model's next-token distribution, read straight from the logits.

`logits_all=True` would keep n_ctx x n_vocab floats to get log-probabilities; the last
position's logits are all that is needed, and llama.cpp keeps those anyway
(`llama_get_logits_ith(ctx, -1)` after evaluating the prompt).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import llama_cpp

from llmcli.engine import crash_guard
from llmcli.engine.model import Model
from llmcli.engine.types import LoadOptions
from llmcli.engine.vocab import Token, describe

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


@dataclass(frozen=True)
class Candidate:
    token: Token
    probability: float
    logit: float


@dataclass(frozen=True)
class Step:
    """One position: the likeliest tokens, and the one greedy decoding takes."""

    candidates: tuple[Candidate, ...]
    # The greedy continuation up to and including this step's top token.
    text_so_far: str

    @property
    def chosen(self) -> Candidate:
        return self.candidates[0]


def softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Probabilities from logits, in float64 and shifted by the max so exp never overflows."""
    import numpy as np

    shifted = logits.astype(np.float64) - float(np.max(logits))
    weights = np.exp(shifted)
    result: npt.NDArray[np.float64] = weights / weights.sum()
    return result


def top_k(probs: npt.NDArray[np.float64], k: int) -> list[int]:
    """Indices of the k largest, largest first; ties broken by the lower id, like argmax."""
    import numpy as np

    k = max(1, min(k, probs.shape[0]))
    part = np.argpartition(-probs, k - 1)[:k]
    return sorted((int(i) for i in part), key=lambda i: (-probs[i], i))


def load_model(options: LoadOptions, notify: Callable[[str], None] | None = None) -> Model:
    return Model(options, notify=notify)


def _last_logits(model: Model) -> npt.NDArray[np.float32]:
    import numpy as np

    n_vocab = model.llama.n_vocab()
    ptr = llama_cpp.llama_get_logits_ith(model.llama.ctx, -1)
    # Copy: the buffer is overwritten by the next decode.
    logits: npt.NDArray[np.float32] = np.ctypeslib.as_array(ptr, shape=(n_vocab,)).copy()
    return logits


def next_tokens(
    model: Model,
    prompt: Sequence[int],
    *,
    k: int = 10,
    steps: int = 1,
    on_logits: Callable[[npt.NDArray[np.float32]], None] | None = None,
) -> list[Step]:
    """The k likeliest next tokens after `prompt`, then after each greedy choice.
    `on_logits` sees every step's whole row of logits (for views of the full distribution).

    Stops early after an end-of-generation token or when the context is full.
    """
    model.check_fits(prompt)
    model.make_room(len(prompt) + steps)
    llama = model.llama
    llama.reset()  # type: ignore[no-untyped-call]  # start from an empty KV cache: a previous prompt must not leak in
    with crash_guard.evaluating():
        llama.eval(list(prompt))
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = ""
    out: list[Step] = []
    for step in range(steps):
        logits = _last_logits(model)
        if on_logits is not None:
            on_logits(logits)
        probs = softmax(logits)
        ids = top_k(probs, k)
        tokens = describe(model, ids)
        candidates = tuple(
            Candidate(token, float(probs[i]), float(logits[i]))
            for token, i in zip(tokens, ids, strict=True)
        )
        best = ids[0]
        end = model.is_end_of_generation(best)
        if not end:
            text += decoder.decode(model.token_bytes(best))
        out.append(Step(candidates, text))
        if end or step == steps - 1 or len(prompt) + step + 1 >= model.n_ctx:
            break
        with crash_guard.evaluating():
            llama.eval([best])
    return out
