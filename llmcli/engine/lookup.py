"""Prompt-lookup decoding: draft tokens copied from earlier text, checked in one batch.

Answers that quote their input (extraction, editing, summaries with names) repeat runs of
tokens the model has already seen. When the last few tokens occurred before, the tokens
that followed them then are a cheap guess for what follows now. The guess is evaluated in
one batch together with the last real token; greedy verification keeps the longest
prefix on which the model's own choice agrees, plus the model's choice at the first
disagreement. Output is therefore what plain greedy decoding gives, token for token,
up to floating-point differences between batched and single-token evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaBatch

if TYPE_CHECKING:
    from llmcli.engine.model import Model

NGRAM_MIN = 2
NGRAM_MAX = 4
DRAFT_MIN = 1
DRAFT_START = 4
DRAFT_MAX = 32


class NgramIndex:
    """Where each n-gram of the history last occurred, to continue from there."""

    def __init__(self, history: list[int]) -> None:
        self.history = history
        self._next: list[dict[tuple[int, ...], int]] = [{} for _ in range(NGRAM_MAX + 1)]
        self._indexed = 0  # n-grams ending before this position are indexed

    def _catch_up(self) -> None:
        # Never index the n-gram that ends at the last token: it would match itself.
        end = len(self.history) - 1
        hist = self.history
        for stop in range(self._indexed, end):
            for n in range(NGRAM_MIN, NGRAM_MAX + 1):
                if stop + 1 >= n:
                    self._next[n][tuple(hist[stop + 1 - n : stop + 1])] = stop + 1
        self._indexed = max(self._indexed, end)

    def draft(self, limit: int) -> list[int]:
        self._catch_up()
        hist = self.history
        for n in range(NGRAM_MAX, NGRAM_MIN - 1, -1):
            if len(hist) < n:
                continue
            start = self._next[n].get(tuple(hist[-n:]))
            if start is not None:
                return hist[start : start + limit]
        return []


class DraftPace:
    """How long the next draft may be, and when to draft at all.

    A rejected draft token costs most of what a generated one does (on a CPU a batch
    grows nearly linearly with its size), so drafting pays only while drafts keep being
    accepted: the length doubles after a full accept, drops to what was accepted after
    a partial one, and after a miss drafting pauses for a stretch that doubles with each
    miss in a row (free text rarely repeats itself; copied text does).
    """

    def __init__(self) -> None:
        self.limit = DRAFT_START
        self._misses = 0
        self._resume_at = 0

    def ready(self, position: int) -> bool:
        return position >= self._resume_at

    def update(self, drafted: int, accepted: int, position: int) -> None:
        if accepted == drafted:
            self.limit = min(DRAFT_MAX, self.limit * 2)
            self._misses = 0
        elif accepted == 0:
            self._misses += 1
            self.limit = DRAFT_MIN
            self._resume_at = position + (1 << min(self._misses, 6))
        else:
            self.limit = max(DRAFT_MIN, accepted)
            self._misses = 0


@dataclass
class LookupStats:
    drafted: int = 0
    accepted: int = 0


def _argmax(row: object, n_vocab: int) -> int:
    return int(np.ctypeslib.as_array(row, shape=(n_vocab,)).argmax())


def _prompt_is_evaluated(model: Model, prompt: Sequence[int]) -> bool:
    """True when the context holds exactly the prompt with fresh logits for its end
    (the prompt cache evaluates it before saving)."""
    llama = model.llama
    return (
        llama.n_tokens == len(prompt)
        and not llama._requires_eval
        and list(llama.input_ids[: len(prompt)]) == list(prompt)
    )


def greedy_tokens(model: Model, prompt: Sequence[int], stats: LookupStats) -> Iterator[int]:
    """Yield greedy tokens after `prompt`, drafting from n-grams of the prompt and answer.

    Leaves the Llama's token bookkeeping consistent with its KV cache, so later calls
    (plain generation, a chat's next turn) reuse the prefix as usual.
    """
    llama = model.llama
    ctx = llama._ctx
    n_vocab = llama.n_vocab()
    n_ctx = model.n_ctx
    if not _prompt_is_evaluated(model, prompt):
        # The whole remaining prompt in one call, exactly as plain decoding evaluates it:
        # splitting it differently changes the floating-point sums, and so near-ties.
        reuse = model.cached_prefix(prompt)
        ctx.kv_cache_seq_rm(0, reuse, -1)
        llama.n_tokens = reuse
        llama.eval(prompt[reuse:])
    first = _argmax(llama_cpp.llama_get_logits_ith(llama.ctx, -1), n_vocab)
    history = [*prompt, first]
    index = NgramIndex(history)
    batch = LlamaBatch(n_tokens=DRAFT_MAX + 1, embd=0, n_seq_max=1)
    pace = DraftPace()
    last = first
    yield first
    try:
        while True:
            n_past = llama.n_tokens
            room = n_ctx - n_past - 1
            if room < 0:
                return
            draft = index.draft(min(pace.limit, room)) if pace.ready(len(history)) else []
            tokens = [last, *draft]
            batch.set_batch(tokens, n_past=n_past, logits_all=True)
            ctx.decode(batch)
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits(llama.ctx), shape=(len(tokens), n_vocab)
            )
            choices = logits.argmax(axis=1)
            accepted = 0
            while accepted < len(draft) and draft[accepted] == choices[accepted]:
                accepted += 1
            kept = n_past + 1 + accepted
            llama.input_ids[n_past:kept] = tokens[: 1 + accepted]
            llama.n_tokens = kept
            if accepted < len(draft):
                ctx.kv_cache_seq_rm(0, kept, -1)
            if draft:
                stats.drafted += len(draft)
                stats.accepted += accepted
                pace.update(len(draft), accepted, len(history))
            new = [*draft[:accepted], int(choices[accepted])]
            for token in new:
                history.append(token)
                yield token
            last = new[-1]
    finally:
        batch.close()  # type: ignore[no-untyped-call]
