"""Per-token log-probabilities of a generated answer, in the shape OpenAI's API uses
(`logprobs.content[]`: token, logprob, bytes, top_logprobs), so a server can pass them on.

They are the model's own distribution at each step (temperature 1, no filtering),
whatever the sampler then did with it; the same numbers as `llmcli next`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmcli.engine.pieces import piece_text

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


@dataclass(frozen=True)
class Alternative:
    id: int
    data: bytes
    logprob: float

    @property
    def token(self) -> str:
        return piece_text(self.data)

    def as_json(self) -> dict[str, Any]:
        return {"token": self.token, "logprob": self.logprob, "bytes": list(self.data)}


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its log-probability, the likeliest alternatives, and the text
    it added to the answer ("" for a token that only starts a character)."""

    chosen: Alternative
    top: tuple[Alternative, ...]
    text: str

    @property
    def probability(self) -> float:
        import math

        return math.exp(self.chosen.logprob)

    def as_json(self) -> dict[str, Any]:
        return {**self.chosen.as_json(), "top_logprobs": [a.as_json() for a in self.top]}


def log_softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    import numpy as np

    shifted = logits.astype(np.float64) - float(np.max(logits))
    result: npt.NDArray[np.float64] = shifted - np.log(np.exp(shifted).sum())
    return result


def token_logprob(
    logits: npt.NDArray[np.float32],
    token: int,
    k: int,
    text: str,
    token_bytes: Callable[[int], bytes],
) -> TokenLogprob:
    """`token`'s entry, with the k likeliest tokens (ties to the lower id, like argmax)."""
    import numpy as np

    logprobs = log_softmax(logits)
    top: list[int] = []
    if k > 0:
        k = min(k, logprobs.shape[0])
        part = np.argpartition(-logprobs, k - 1)[:k]
        top = sorted((int(i) for i in part), key=lambda i: (-logprobs[i], i))
    return TokenLogprob(
        chosen=Alternative(token, token_bytes(token), float(logprobs[token])),
        top=tuple(Alternative(i, token_bytes(i), float(logprobs[i])) for i in top),
        text=text,
    )


def content_json(entries: list[TokenLogprob]) -> dict[str, Any]:
    return {"content": [e.as_json() for e in entries]}
