"""Answers that run away: a small model, greedy above all, can fall into saying the same
few words over and over until the context is full (thousands of tokens of "aye, aye").

llama.cpp and ollama both generate until the context is full by default (n_predict /
num_predict -1); their remedies change the sampling itself (ollama's default repeat
penalty 1.1 over the last 64 tokens, llama.cpp's DRY sampler, off by default), and so
every answer, looping or not. Here sampling stays as asked: an answer whose end has
become one stretch of text repeated many times over is stopped there, with
finish_reason "repetition". Only answers without a length limit are watched:
--max-tokens lets an answer repeat itself as long as it was asked to.
"""

from __future__ import annotations

from collections.abc import Iterator

from llmcli.engine.reasoning import Kind
from llmcli.engine.types import GenerationResult

# The repeated stretch at the end must be this long: MIN_COPIES copies of the cycle at
# least, and MIN_CHARS characters (a few hundred tokens), or for a short cycle SHORT_COPIES
# copies, but never under MIN_SHORT characters. A poem's refrain, a table's rule or a
# short list of equal items stays well below.
MIN_CHARS = 1000
MIN_COPIES = 4
SHORT_COPIES = 64
MIN_SHORT = 256
MAX_CYCLE = 500
_CHECK_EVERY = 16  # characters of new text between two looks
_KEPT = MIN_COPIES * MAX_CYCLE


def cycle_at_end(text: str) -> int | None:
    """The length of the shortest cycle that `text` ends with, repeated over the length
    required of it (see MIN_CHARS); None if it ends with none."""
    n = len(text)
    for period in range(1, MAX_CYCLE + 1):
        span = max(min(MIN_CHARS, SHORT_COPIES * period), MIN_SHORT, MIN_COPIES * period)
        if span > n:
            return None  # a longer cycle needs at least as much text
        # Periodic with this period: every character equals the one `period` later
        # (the last one alone rules out most periods cheaply).
        if (
            text[-1] == text[-1 - period]
            and text[n - span : n - period] == text[n - span + period :]
        ):
            return period
    return None


class LoopWatch:
    """Fed an answer as it streams, says when it has started repeating itself."""

    def __init__(self) -> None:
        self._tail = ""
        self._unchecked = 0

    def feed(self, text: str) -> bool:
        self._tail = (self._tail + text)[-_KEPT:]
        self._unchecked += len(text)
        if self._unchecked < _CHECK_EVERY:
            return False
        self._unchecked = 0
        return cycle_at_end(self._tail) is not None


def until_repeating(
    parts: Iterator[tuple[Kind, str]], result: GenerationResult
) -> Iterator[tuple[Kind, str]]:
    """The parts of a streamed answer (thinking and answer text, as a Generation
    yields them), ending where either starts repeating itself; `result.finish_reason`
    then says "repetition". The engine's generator is closed either way."""
    watches: dict[Kind, LoopWatch] = {}
    try:
        for kind, text in parts:
            yield kind, text
            if watches.setdefault(kind, LoopWatch()).feed(text):
                result.finish_reason = "repetition"
                return
    finally:
        close = getattr(parts, "close", None)
        if close is not None:
            close()


REPEATING = "stopped: the answer keeps repeating itself"
