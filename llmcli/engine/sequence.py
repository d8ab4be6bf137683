"""One answer's per-token logic, the same for every way llmcli generates.

A `SequenceDecoder` takes the tokens one sequence samples, one at a time, whoever
samples them: `Model.generate` (run, chat, batch lines) with the bindings' generator or
prompt-lookup decoding, and the `Scheduler` (serve, `run --parallel`) with its own
sampler per sequence. It owns what turns those tokens into an answer: the seed, the token
budget, UTF-8 assembly and stop strings, the end of generation, the thinking/answer
split of reasoning models, log-probabilities and the reason the answer ended.
"""

from __future__ import annotations

import codecs
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmcli.engine.logprobs import TokenLogprob, token_logprob
from llmcli.engine.reasoning import Kind
from llmcli.engine.stops import StopScanner
from llmcli.engine.types import FinishReason, GenerationResult, Sampling

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from llmcli.engine.tokenizer import Tokenizer

Part = tuple[Kind, str]


class SequenceDecoder:
    """Turns one sequence's sampled tokens into thinking and answer text.

    `room` is how many tokens the context leaves after the prompt; the budget is the
    smaller of it and `sampling.max_tokens`. `top_logprobs` (a number of alternatives)
    asks for each token's log-probability: `feed` then needs the logits it was sampled
    from. `reasoning` False keeps all text as answer (a raw completion endpoint).
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        prompt: Sequence[int],
        sampling: Sampling,
        *,
        room: int,
        top_logprobs: int | None = None,
        reasoning: bool = True,
    ) -> None:
        self._tokenizer = tokenizer
        self.seed = sampling.seed if sampling.seed is not None else secrets.randbits(31)
        self.budget = room if sampling.max_tokens is None else min(room, sampling.max_tokens)
        self.top_logprobs = top_logprobs
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = StopScanner(sampling.stop)
        self._splitter = tokenizer.splitter(prompt) if reasoning else None
        self._markers = tokenizer.marker_ids
        # Tokens of a possible thinking marker, counted once it proves to open one.
        self._held = 0
        self._pieces: dict[Kind, list[str]] = {"thinking": [], "answer": []}
        self.completion_tokens = 0
        self.reasoning_tokens = 0
        self.logprobs: list[TokenLogprob] = []
        self.finish_reason: FinishReason | None = "length" if self.budget <= 0 else None
        self._finished = False

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def stop_sequence(self) -> str | None:
        """The stop string that ended the answer; None when anything else did."""
        return self._stops.matched

    @property
    def wants_logits(self) -> bool:
        return self.top_logprobs is not None

    @property
    def text(self) -> str:
        return "".join(self._pieces["answer"])

    @property
    def reasoning(self) -> str:
        return "".join(self._pieces["thinking"]).strip()

    def feed(self, token: int, logits: npt.NDArray[np.float32] | None = None) -> list[Part]:
        """The text this token adds. An end-of-generation token, a stop string or the
        budget ends the answer (`done`), and the text held back comes with it."""
        if self.done:
            return []
        tokenizer = self._tokenizer
        if tokenizer.is_end_of_generation(token):
            return self.finish("stop")
        self.completion_tokens += 1
        splitter = self._splitter
        was_thinking = splitter is not None and splitter.thinking
        piece = self._utf8.decode(tokenizer.token_bytes(token, special=token in self._markers))
        if self.top_logprobs is not None:
            if logits is None:
                raise ValueError("log-probabilities need the logits the token came from")
            entry = token_logprob(logits, token, self.top_logprobs, piece, tokenizer.shown_bytes)
            self.logprobs.append(entry)
        text = self._stops.feed(piece)
        parts = self._parts(text) if text else []
        if splitter is not None:
            if was_thinking or splitter.thinking:
                self.reasoning_tokens += 1 + self._held
                self._held = 0
            else:
                self._held = self._held + 1 if splitter.pending else 0
        if self._stops.stopped:
            return parts + self.finish("stop")
        if self.completion_tokens >= self.budget:
            return parts + self.finish("length")
        return parts

    def finish(self, reason: FinishReason) -> list[Part]:
        """End the answer for `reason` and release the text held back for a possible stop
        string or marker. The bytes of a character the last token left unfinished are
        dropped, as llama-server does: they are no text. Only the first call counts."""
        if self._finished:
            return []
        self._finished = True
        self.finish_reason = reason
        self._utf8.reset()
        return self._parts(self._stops.flush(), final=True)

    def fill(self, result: GenerationResult) -> None:
        """Copy what the answer holds so far into `result` (whose list of logprobs is
        extended, not replaced: a view may be showing it as it grows)."""
        result.seed = self.seed
        result.text = self.text
        result.reasoning = self.reasoning
        result.completion_tokens = self.completion_tokens
        result.reasoning_tokens = self.reasoning_tokens
        result.logprobs.extend(self.logprobs[len(result.logprobs) :])
        result.finish_reason = self.finish_reason or "length"

    def _parts(self, text: str, *, final: bool = False) -> list[Part]:
        splitter = self._splitter
        if splitter is None:
            out: list[Part] = [("answer", text)] if text else []
        else:
            out = (splitter.feed(text) if text else []) + (splitter.flush() if final else [])
        for kind, piece in out:
            self._pieces[kind].append(piece)
        return out
