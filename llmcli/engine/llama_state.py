"""The one place that works on `Llama`'s private state: its KV cache and token record.

llama-cpp-python's `Llama` keeps, beside the context's KV cache, a record of the tokens
it evaluated (`input_ids[:n_tokens]`) and whether its latest logits belong to the last
of them (`not _requires_eval`). `generate()` compares a new prompt with that record to
decide what to reuse, so anything that changes the cache behind its back (rewinding,
a batch evaluated outside, a saved state loaded) must update the record with it.
`KvState` does all of those, keeping these invariants:

- the KV cache of sequence 0 holds positions [0, n_tokens) and no others;
- `tokens()` are the tokens at those positions;
- when the latest logits are not those of position n_tokens - 1, the record says so,
  and the engine evaluates again before it samples.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import llama_cpp
from llama_cpp._internals import LlamaBatch, LlamaSampler

from llmcli.engine import crash_guard

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

SEQ = 0  # `Llama` evaluates everything in sequence 0


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens two sequences share from their start."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def bindings_model(llama: llama_cpp.Llama) -> Any:
    """The bindings' own wrapper of the loaded model (`llama_cpp._internals.LlamaModel`),
    which their low-level context and sampler classes take."""
    return llama._model


class KvState:
    """The KV cache of a `Llama`'s context and the Llama's record of it (see above)."""

    def __init__(self, llama: llama_cpp.Llama) -> None:
        self._llama = llama
        self._batch: LlamaBatch | None = None
        self._capacity = 0
        self._staged: list[int] = []

    def close(self) -> None:
        if self._batch is not None:
            self._batch.close()  # type: ignore[no-untyped-call]
            self._batch = None

    # -- what it holds -----------------------------------------------------------------

    @property
    def n_tokens(self) -> int:
        """Positions evaluated and held in the KV cache."""
        return int(self._llama.n_tokens)

    @property
    def n_batch(self) -> int:
        """Most tokens one call evaluates: longer inputs are split at multiples of it."""
        return int(self._llama.n_batch)

    def tokens(self) -> list[int]:
        held: list[int] = self._llama.input_ids[: self._llama.n_tokens].tolist()
        return held

    def shared_prefix(self, tokens: Sequence[int]) -> int:
        """Leading `tokens` already in the KV cache."""
        return common_prefix(self.tokens(), tokens)

    def reusable(self, prompt: Sequence[int]) -> int:
        """Prompt tokens already in the KV cache that the next evaluation keeps: all
        shared ones but the prompt's last, which the engine evaluates again for its
        logits."""
        return min(self.shared_prefix(prompt), len(prompt) - 1)

    def holds_exactly(self, prompt: Sequence[int]) -> bool:
        """True when the cache holds exactly `prompt`, with the logits of its end."""
        llama = self._llama
        return (
            llama.n_tokens == len(prompt)
            and not llama._requires_eval
            and self.tokens() == list(prompt)
        )

    def last_logits(self) -> npt.NDArray[np.float32]:
        """The latest logits of the last position evaluated (a view; the next
        evaluation overwrites it)."""
        import numpy as np

        n_vocab = self._llama.n_vocab()
        pointer = llama_cpp.llama_get_logits_ith(self._llama.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(n_vocab,))

    def sample(self, sampler: LlamaSampler) -> int:
        """A token drawn by `sampler` (which also takes it in) from the latest logits."""
        return int(sampler.sample(self._llama._ctx, -1))

    # -- changing it -------------------------------------------------------------------

    def rewind(self, n_keep: int) -> None:
        """Forget every position from `n_keep` on."""
        self._llama._ctx.kv_cache_seq_rm(SEQ, n_keep, -1)
        self._llama.n_tokens = n_keep

    def evaluate(self, tokens: Sequence[int]) -> None:
        """Evaluate `tokens` after the positions held, as generation does."""
        with crash_guard.evaluating():
            self._llama.eval(tokens)

    def evaluate_prompt(self, prompt: Sequence[int]) -> None:
        """Evaluate what the cache does not already hold of `prompt`, in one call as
        generation would (splitting it differently changes the floating-point sums),
        so that the cache holds exactly the prompt, with fresh logits."""
        reuse = self.reusable(prompt)
        self.rewind(reuse)
        self.evaluate(prompt[reuse:])

    def record_outside(self, token: int, count: int) -> None:
        """Record `count` positions that were evaluated outside the Llama (an image's
        embeddings, by mtmd) as holding `token`; the latest logits are not theirs."""
        llama = self._llama
        n_past = llama.n_tokens
        llama.input_ids[n_past : n_past + count] = token
        llama.n_tokens = n_past + count
        llama._requires_eval = True

    def evaluate_alone(self, batch: LlamaBatch) -> None:
        """Evaluate `batch` from an empty cache, for a pooled output (a reranker's score):
        nothing evaluated before may take part, and the record says the cache is empty."""
        self._llama._ctx.kv_cache_clear()  # type: ignore[no-untyped-call]
        self._llama.n_tokens = 0
        with crash_guard.evaluating():
            self._llama._ctx.decode(batch)
        self._llama._ctx.kv_cache_clear()  # type: ignore[no-untyped-call]

    # -- a batch evaluated outside the record (drafts) ---------------------------------

    def stage(self, tokens: Sequence[int]) -> None:
        """Put `tokens` in a batch for the positions after those held, each to get its
        logits. `decode_staged` evaluates it; `accept` then records how many are kept."""
        if not tokens:
            # The bindings mark the last token for output by index: none would write
            # before the batch's buffer.
            raise ValueError("nothing to stage")
        if self._batch is None or self._capacity < len(tokens):
            self.close()
            self._capacity = max(len(tokens), 16)
            self._batch = LlamaBatch(n_tokens=self._capacity, embd=0, n_seq_max=1)
        self._batch.set_batch(list(tokens), n_past=self.n_tokens, logits_all=True)
        self._staged = list(tokens)

    def decode_staged(self) -> None:
        assert self._batch is not None
        with crash_guard.evaluating():
            self._llama._ctx.decode(self._batch)

    def staged_logits(self) -> npt.NDArray[np.float32]:
        """One row of logits per staged token (a view, valid until the next evaluation)."""
        import numpy as np

        shape = (len(self._staged), self._llama.n_vocab())
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits(self._llama.ctx), shape=shape)

    def accept(self, n: int) -> None:
        """Record the first `n` staged tokens as evaluated and drop the others from the
        cache. The latest logits are the last kept position's only when all are kept."""
        llama = self._llama
        n_past = llama.n_tokens
        kept = n_past + n
        llama.input_ids[n_past:kept] = self._staged[:n]
        llama.n_tokens = kept
        dropped = n < len(self._staged)
        if dropped:
            llama._ctx.kv_cache_seq_rm(SEQ, kept, -1)
        llama._requires_eval = dropped
        self._staged = []

    # -- a larger context ---------------------------------------------------------------

    def grow(self, n_ctx: int) -> None:
        """Move everything to a new context of `n_ctx` positions: the positions held
        (their KV state, copied exactly), the token record, and from then on every
        evaluation. The sampler of a generation under way keeps its state (it is handed
        the context on each call), so the answer goes on as it would have in a context
        of that size from the start."""
        import contextlib

        import numpy as np
        from llama_cpp._internals import LlamaContext

        llama = self._llama
        held = llama.n_tokens
        state = self.save() if held else b""
        if state is None:
            raise RuntimeError("the engine gave no copy of the KV cache to move")
        # A copy: the Llama's own parameters change only once the new context exists.
        params = type(llama.context_params).from_buffer_copy(llama.context_params)
        params.n_ctx = n_ctx
        new = LlamaContext(model=llama._model, params=params, verbose=llama.verbose)
        if state and not _put_state(new.ctx, state):
            new.close()  # type: ignore[no-untyped-call]
            raise RuntimeError("the engine refused to move the KV cache to a larger context")
        old = llama._ctx
        llama._ctx = new
        llama.context_params = params
        llama._stack.enter_context(contextlib.closing(new))
        old.close()  # type: ignore[no-untyped-call]
        ids = np.zeros((n_ctx,), dtype=np.intc)
        ids[:held] = llama.input_ids[:held]
        llama.input_ids = ids
        llama._n_ctx = llama.n_ctx()

    # -- saved states (the prompt cache) -----------------------------------------------

    def save(self) -> bytes | None:
        """A copy of the KV state of the positions held; None when the engine gives none.
        Logits are not part of it."""
        ctx = self._llama.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, SEQ)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, SEQ)
        if written <= 0:
            return None
        return bytes(memoryview(buffer)[:written])

    def restore(self, state: Any, tokens: Sequence[int], keep: int) -> bool:
        """Replace the cache by `state` (bytes-like, from `save`) of `tokens`, keeping
        its first `keep` positions. False, with an empty cache, when the engine refuses
        the state."""
        self.rewind(0)
        if not _put_state(self._llama.ctx, state):
            self.rewind(0)
            return False
        llama = self._llama
        llama._requires_eval = True  # logits are not part of the saved state
        llama.input_ids[:keep] = tokens[:keep]
        self.rewind(keep)
        return True


def _put_state(ctx: Any, state: Any) -> bool:
    """Load a sequence state (bytes-like, from `KvState.save`) into sequence 0 of `ctx`;
    False when the engine refuses it."""
    size = len(state)
    data = (ctypes.c_uint8 * size).from_buffer_copy(state)
    return bool(llama_cpp.llama_state_seq_set_data(ctx, data, size, SEQ) == size)
