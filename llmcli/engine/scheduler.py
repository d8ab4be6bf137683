"""Many answers from one model at once: continuous batching over llama.cpp sequences.

One llama.cpp context holds `parallel` sequences, each with its own part of the KV cache.
A thread runs the loop: every step builds one batch from the next token of each sequence
that is answering and a chunk of each prompt still being read, decodes it, and samples one
token per sequence. A request that arrives joins at the next step; one that ends or whose
client goes away frees its sequence at once. A new request takes the free sequence whose
cached tokens share the longest start with its prompt, so a conversation's next turn
evaluates only what is new; when another sequence holds (or is about to evaluate) a
longer start, as the lines of a batch share a system prompt, its cache is copied instead.

Results go back through each job's `emit` callback, called on the scheduler thread.

Longer than the ~350 lines a module aims at: it is one state machine (slots, the queue,
the step loop and its sampling), whose parts share the lock and the slots' state.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaBatch, LlamaContext, LlamaSampler

from llmcli.engine import crash_guard
from llmcli.engine.context_setup import set_context_params
from llmcli.engine.llama_state import bindings_model, common_prefix
from llmcli.engine.logprobs import TokenLogprob
from llmcli.engine.model import Model
from llmcli.engine.samplers import make_sampler
from llmcli.engine.sequence import Part, SequenceDecoder
from llmcli.engine.types import MEDIA_SLOT, FinishReason, Sampling
from llmcli.errors import ContextOverflowError, LlmcliError, UsageError

if TYPE_CHECKING:
    from llmcli.engine.vision import MediaPrompt


# A copy of another sequence's cache is made when the prompt tokens it saves are at
# least 1/_COPY_WORTH of a sequence's cells (the copy moves all of them).
_COPY_WORTH = 64


class QueueFullError(LlmcliError):
    """More requests are waiting than the queue holds."""


@dataclass
class Chunk:
    """What one step produced for a job: thinking and answer text (none while UTF-8, a
    possible stop string or a marker is held back), the token's logprobs when asked, and
    at the end the reason."""

    parts: list[Part] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    error: str | None = None

    @property
    def text(self) -> str:
        """The answer text in this chunk."""
        return "".join(text for kind, text in self.parts if kind == "answer")


@dataclass
class Job:
    prompt: list[int]
    sampling: Sampling
    emit: Callable[[Chunk], None]
    top_logprobs: int | None = None  # None: no logprobs
    # False: all the text is answer, even from a reasoning model (a raw completion).
    reasoning: bool = True
    # Filled in by the scheduler.
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    stop_sequence: str | None = None  # the stop string that ended the answer
    seed: int = 0
    cancelled: bool = False
    submitted_at: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    # The prompt's attachments (`prompt` is its `tokens`), freed once the job is over.
    media: MediaPrompt | None = None

    def drop_media(self) -> None:
        if self.media is not None:
            self.media.close()


@dataclass
class _Slot:
    seq: int
    cached: list[int] = field(default_factory=list)  # tokens whose KV this sequence holds
    job: Job | None = None
    pending: list[int] = field(default_factory=list)  # prompt tokens still to evaluate
    last: int = -1  # the token to evaluate next while answering
    sampler: LlamaSampler | None = None
    answer: SequenceDecoder | None = None
    logits_row: int = -1  # this step's output row for the slot, or -1


class Scheduler:
    """Decodes up to `parallel` jobs together. `submit` from any thread; `close` ends."""

    def __init__(
        self, model: Model, *, parallel: int, ctx_per_sequence: int, max_waiting: int
    ) -> None:
        self.model = model
        self.parallel = parallel
        self.ctx_per_sequence = ctx_per_sequence
        self.max_waiting = max_waiting
        llama = model.llama
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = ctx_per_sequence * parallel
        params.n_batch = model.options.n_batch
        params.n_ubatch = model.setup.ubatch or model.options.n_batch
        params.n_seq_max = parallel
        params.n_threads = model.threads
        params.n_threads_batch = model.threads
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if model.options.flash_attn
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        # Each sequence gets its own ctx_per_sequence cells: one long answer cannot
        # starve the others.
        params.kv_unified = False
        params.no_perf = True
        set_context_params(params, model.options)
        self._ctx = LlamaContext(model=bindings_model(llama), params=params, verbose=False)
        model.apply_adapter(self._ctx.ctx)
        self._n_batch = model.options.n_batch
        self._batch = LlamaBatch(n_tokens=self._n_batch, embd=0, n_seq_max=1)
        self._n_vocab = llama.n_vocab()
        self._slots = [_Slot(seq) for seq in range(parallel)]
        self._waiting: deque[Job] = deque()
        self._lock = threading.Condition()
        self._running = True
        self._accepting = True
        self._interrupt = False
        self._thread = threading.Thread(target=self._loop, name="llmcli-scheduler", daemon=True)
        self._thread.start()

    # -- from any thread --------------------------------------------------------------

    def submit(self, job: Job) -> None:
        if not job.prompt:
            # A sequence needs a last prompt token to read its first logits from.
            raise UsageError("the prompt is empty: there is nothing to answer")
        if len(job.prompt) >= self.ctx_per_sequence:
            raise ContextOverflowError(
                f"the prompt is {len(job.prompt)} tokens but the context window holds "
                f"{self.ctx_per_sequence}"
            )
        with self._lock:
            if not self._running or not self._accepting:
                raise LlmcliError("the server is shutting down")
            # Jobs not yet admitted count too: a burst that arrives while sequences are
            # free would otherwise all be taken before the loop hands any of them one.
            busy = sum(1 for s in self._slots if s.job is not None)
            if busy + len(self._waiting) >= self.parallel + self.max_waiting:
                raise QueueFullError(
                    f"all {self.parallel} sequences are busy and {self.max_waiting} "
                    "requests are waiting"
                )
            self._waiting.append(job)
            self._lock.notify()

    def cancel(self, job: Job) -> None:
        """Stop a job (its client went away): its sequence is freed at the next step."""
        with self._lock:
            job.cancelled = True
            if job in self._waiting:
                self._waiting.remove(job)
                job.drop_media()
            self._lock.notify()

    def stop_accepting(self) -> None:
        """Refuse new jobs; those in flight go on."""
        with self._lock:
            self._accepting = False

    def interrupt_all(self) -> None:
        """End every job now, each with what it has so far."""
        with self._lock:
            self._interrupt = True
            self._lock.notify()

    def load(self) -> tuple[int, int]:
        """(jobs answering, jobs waiting); a job about to take a free sequence answers."""
        with self._lock:
            busy = sum(1 for s in self._slots if s.job is not None)
            starting = min(self.parallel - busy, len(self._waiting))
            return busy + starting, len(self._waiting) - starting

    def close(self) -> None:
        with self._lock:
            self._running = False
            for job in self._waiting:
                job.cancelled = True
                job.drop_media()
            self._lock.notify()
        self._thread.join()
        for slot in self._slots:
            if slot.sampler is not None:
                slot.sampler.close()  # type: ignore[no-untyped-call]
        self._batch.close()  # type: ignore[no-untyped-call]
        self._ctx.close()  # type: ignore[no-untyped-call]

    # -- the scheduler thread ---------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._lock:
                while self._running and not self._waiting and not self._active():
                    self._lock.wait()
                if not self._running or self._interrupt:
                    for job in self._waiting:
                        self._emit(job, Chunk(finish_reason="interrupted"))
                        job.drop_media()
                    self._waiting.clear()
                    for slot in self._slots:
                        if slot.job is not None:
                            self._finish(slot, "interrupted")
                    if not self._running:
                        return
                    self._interrupt = False
                    continue
                self._admit()
            try:
                self._step()
            except Exception as exc:  # a failed decode must not leave clients waiting
                for slot in self._slots:
                    if slot.job is not None:
                        self._finish(slot, "error", error=str(exc))

    def _active(self) -> bool:
        return any(s.job is not None for s in self._slots)

    def _admit(self) -> None:
        """Give waiting jobs the free sequences whose caches match them best."""
        while self._waiting:
            free = [s for s in self._slots if s.job is None]
            if not free:
                return
            job = self._waiting.popleft()
            if job.cancelled:
                job.drop_media()
                continue
            slot = max(free, key=lambda s: (common_prefix(s.cached, job.prompt), -s.seq))
            start = job.prompt if job.media is None else job.prompt[: job.media.first_media]
            ready = max(common_prefix(s.cached, start) for s in self._slots)
            if self._soon_shared(start, ready):
                self._waiting.appendleft(job)
                return
            self._start(slot, job)

    def _start(self, slot: _Slot, job: Job) -> None:
        # The last prompt token is always evaluated again: its logits are needed. An
        # attachment's positions hold MEDIA_SLOT whatever the image: none is kept.
        limit = len(job.prompt) - 1
        if job.media is not None:
            limit = min(limit, job.media.first_media)
        keep = min(common_prefix(slot.cached, job.prompt), limit)
        donor, shared = self._donor(slot, job.prompt[:limit], keep)
        if donor is not None:
            # Another sequence holds a longer start of this prompt (a system prompt
            # every line of a batch shares): its cache is copied rather than evaluated.
            self._ctx.kv_cache_seq_cp(donor.seq, slot.seq, -1, -1)
            slot.cached = list(donor.cached)
            keep = shared
        self._ctx.kv_cache_seq_rm(slot.seq, keep, -1)
        slot.cached = slot.cached[:keep]
        slot.job = job
        slot.pending = list(job.prompt[keep:])
        job.prompt_tokens = len(job.prompt)
        job.cached_tokens = keep
        slot.answer = SequenceDecoder(
            self.model.tokenizer,
            job.prompt,
            job.sampling,
            room=self.ctx_per_sequence - len(job.prompt),
            top_logprobs=job.top_logprobs,
            reasoning=job.reasoning,
        )
        job.seed = slot.answer.seed
        if slot.sampler is not None:
            slot.sampler.close()  # type: ignore[no-untyped-call]
        slot.sampler = make_sampler(self.model.llama, job.sampling, job.seed)

    def _soon_shared(self, prompt: list[int], ready: int) -> bool:
        """Whether a sequence is about to evaluate a start of `prompt` worth copying,
        longer than the `ready` tokens some sequence already holds: the job then waits
        a step for it rather than evaluating the same tokens beside it."""
        return any(
            self._worth(common_prefix(other.cached + other.pending, prompt) - ready)
            for other in self._slots
            if other.job is not None and other.pending
        )

    def _worth(self, gain: int) -> bool:
        return gain > 0 and gain * _COPY_WORTH >= self.ctx_per_sequence

    def _donor(self, slot: _Slot, prompt: list[int], own: int) -> tuple[_Slot | None, int]:
        """The other sequence whose cache shares the longest start with `prompt`, when it
        is worth a copy: llama.cpp copies a sequence's whole share of the cache between
        sequences, so the gain over `own` must be a fair part of that share."""
        best, shared = None, own
        for other in self._slots:
            if other is not slot:
                common = common_prefix(other.cached, prompt)
                if common > shared:
                    best, shared = other, common
        if best is None or not self._worth(shared - own):
            return None, own
        return best, shared

    def _step(self) -> None:
        batch = self._batch.batch
        n = 0
        for slot in self._slots:
            slot.logits_row = -1
            job = slot.job
            if job is None:
                continue
            if job.cancelled:
                self._release(slot)
                continue
            if not slot.pending and n < self._n_batch:
                n = _add(batch, n, slot.last, len(slot.cached), slot.seq, True)
                slot.logits_row = n - 1
                slot.cached.append(slot.last)
        for slot in self._slots:
            if slot.job is None or not slot.pending or n >= self._n_batch:
                continue
            take = slot.pending[: self._n_batch - n]
            if slot.job.media is not None:
                take = self._media_first(slot, take)
                if not take:
                    continue
            for i, token in enumerate(take):
                last = i == len(take) - 1 and len(take) == len(slot.pending)
                n = _add(batch, n, token, len(slot.cached), slot.seq, last)
                slot.cached.append(token)
                if last:
                    slot.logits_row = n - 1
            del slot.pending[: len(take)]
        if n == 0:
            return
        batch.n_tokens = n
        with crash_guard.evaluating():
            self._ctx.decode(self._batch)
            for slot in self._slots:
                if slot.logits_row >= 0 and slot.job is not None:
                    self._next_token(slot)

    def _media_first(self, slot: _Slot, take: list[int]) -> list[int]:
        """Evaluate the attachment the slot's prompt goes on with, if any (mtmd decodes
        its embeddings in a batch of their own); the text to take up to the next one."""
        media = slot.job.media if slot.job is not None else None
        assert media is not None
        positions = media.media_at(len(slot.cached))
        if positions:
            media.evaluate_media(self._ctx.ctx, len(slot.cached), slot.seq, self._n_batch)
            slot.cached += [MEDIA_SLOT] * positions
            del slot.pending[:positions]
            take = slot.pending[: len(take)]
        if MEDIA_SLOT in take:
            take = take[: take.index(MEDIA_SLOT)]
        return take

    def _next_token(self, slot: _Slot) -> None:
        job, answer = slot.job, slot.answer
        assert job is not None and slot.sampler is not None and answer is not None
        row = slot.logits_row
        logits = None
        if answer.wants_logits:
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(self._ctx.ctx, row), shape=(self._n_vocab,)
            )
        token = slot.sampler.sample(self._ctx, row)
        if job.first_token_at is None:
            job.first_token_at = time.perf_counter()
        seen = len(answer.logprobs)
        parts = answer.feed(token, logits)
        job.completion_tokens = answer.completion_tokens
        job.reasoning_tokens = answer.reasoning_tokens
        job.stop_sequence = answer.stop_sequence
        slot.last = token
        chunk = Chunk(parts, answer.logprobs[seen:], answer.finish_reason)
        if chunk.parts or chunk.logprobs or chunk.finish_reason:
            self._emit(job, chunk)
        if answer.done:
            self._release(slot)

    def _finish(self, slot: _Slot, reason: FinishReason, *, error: str | None = None) -> None:
        """End the slot's job for `reason`, with the text held back until now."""
        job, answer = slot.job, slot.answer
        if job is None:
            return
        parts = answer.finish(reason) if answer is not None else []
        self._emit(job, Chunk(parts, [], reason, error=error))
        self._release(slot)

    def _release(self, slot: _Slot) -> None:
        """Free the job's sequence; what it cached is kept for reuse."""
        if slot.job is not None:
            slot.job.drop_media()
        slot.job = None
        slot.pending = []
        # The cache holds only tokens that were evaluated: a half-read prompt's tail
        # was never decoded, so the record is already exact.

    @staticmethod
    def _emit(job: Job, chunk: Chunk) -> None:
        if not job.cancelled:
            job.emit(chunk)


def _add(batch: llama_cpp.llama_batch, n: int, token: int, pos: int, seq: int, logits: bool) -> int:
    batch.token[n] = token
    batch.pos[n] = pos  # type: ignore[call-overload]
    batch.n_seq_id[n] = 1
    batch.seq_id[n][0] = seq
    batch.logits[n] = logits
    return n + 1
