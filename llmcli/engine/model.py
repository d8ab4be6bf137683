"""A loaded model: its context, its tokenizer, and generation from a prompt.

Loading is `engine.loading`, text and tokens `engine.tokenizer`, the KV cache
`engine.llama_state`; a Model ties them together for one `Llama`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import llama_cpp
from llama_cpp.llama_grammar import LlamaGrammar

from llmcli.engine import context_setup, crash_guard
from llmcli.engine.generation import Generation
from llmcli.engine.llama_state import KvState
from llmcli.engine.loading import (
    decide_setup,
    gpu_offload_supported,
    interrupts_held,
    load_llama,
)
from llmcli.engine.lookup import (
    DRAFT_MAX,
    BatchCosts,
    LookupStats,
    greedy_tokens,
    lookup_applies,
)
from llmcli.engine.prompt_cache import PromptCache, model_identity, preamble_applies
from llmcli.engine.reasoning import Splitter, Thinking
from llmcli.engine.samplers import make_sampler
from llmcli.engine.sequence import Part, SequenceDecoder
from llmcli.engine.tokenizer import Tokenizer
from llmcli.engine.types import Decoding, GenerationResult, LoadOptions, Message, Sampling
from llmcli.errors import ContextOverflowError, LlmcliError
from llmcli.gguf_file.header import check_gguf_file
from llmcli.tuning.identity import model_key
from llmcli.tuning.setups import EngineSetup
from llmcli.tuning.threads import choose_threads

if TYPE_CHECKING:
    from llmcli.engine.vision import Attachment, MediaPrompt, Projector


class Model:
    """A loaded model and its context. Use as a context manager to free it.

    The engine setup (weight repacking, tokens per step) is `setup` when given, else the
    one LLMCLI_ENGINE_SETUP pins, else the one measured safe and fastest for this model on
    this machine (probed in child processes the first time; `notify` hears about it).
    """

    def __init__(
        self,
        options: LoadOptions,
        *,
        setup: EngineSetup | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        check_gguf_file(options.path)
        threads = options.n_threads or choose_threads().threads
        gpu_layers = options.n_gpu_layers
        if gpu_layers is None:
            gpu_layers = -1 if gpu_offload_supported() or options.rpc else 0
        self.options = options
        self.threads = threads
        self.gpu_layers = gpu_layers
        # Computed nothing for a vocabulary-only load: nothing runs, so nothing can fault.
        key = "" if options.vocab_only else model_key(options.path)
        self.decision = decide_setup(options, threads=threads, key=key, setup=setup, notify=notify)
        self.setup = self.decision.setup
        verdict = self.decision.verdict
        self.batch_costs = (
            BatchCosts.measured(verdict.batch_cost, batched=self.setup.ubatch is None)
            if verdict
            else BatchCosts()
        )
        loaded = load_llama(options, self.setup, threads=threads, gpu_layers=gpu_layers, key=key)
        self.llama = loaded.llama
        # --lora: every context of this model gets it (see make_room, the scheduler).
        self.adapter = loaded.adapter
        # How the layers were spread over devices: read from the load log with --rpc.
        self.split = loaded.split
        self.load_s = loaded.seconds
        # The KV cache and the Llama's record of it change only through this.
        self.kv = KvState(self.llama)
        self.tokenizer = Tokenizer(self.llama, options)
        self.reasoning = self.tokenizer.reasoning
        self._prompt_cache: PromptCache | None = None
        # The preamble whose batch of its own the KV cache holds from position 0 (see
        # generate): a later prompt with the same one may keep it.
        self._preamble_held: list[int] = []
        # Started with a smaller KV cache (LoadOptions.start_ctx): n_ctx is still to come.
        self._growing = int(self.llama.n_ctx()) < options.n_ctx
        # Loaded by use_projector: what turns attachments into embeddings.
        self.projector: Projector | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        self.finish_saving()
        if self.projector is not None:
            self.projector.close()  # it refers to the model's weights
        self.kv.close()
        self.llama.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- facts -------------------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        if self._growing:
            return self.options.n_ctx
        # llama.cpp pads small contexts up (to 256) but the bindings size their token
        # buffer by the request: the smaller of the two is the real limit.
        return min(self.options.n_ctx, int(self.llama.n_ctx()))

    def make_room(self, positions: int) -> None:
        """Make sure the KV cache holds `positions` (up to n_ctx): a model started with a
        smaller one (LoadOptions.start_ctx) moves to a context of the full size."""
        if self._growing and positions > int(self.llama.n_ctx()):
            self._growing = False
            try:
                with interrupts_held():  # the new context's log calls back into Python
                    self.kv.grow(self.options.n_ctx)
                self.apply_adapter(self.llama.ctx)
            except (ValueError, RuntimeError) as exc:  # no memory for it, or a refused state
                raise LlmcliError(
                    f"could not grow the context to {self.options.n_ctx} tokens ({exc})",
                    hint="try a smaller --ctx",
                ) from exc

    def apply_adapter(self, ctx: Any) -> None:
        """Use the --lora adapter in another context of this model (a llama_context_p)."""
        if self.adapter is not None:
            self.adapter.apply(ctx)

    @property
    def name(self) -> str:
        return self.llama.metadata.get("general.name") or self.options.path.name

    @property
    def vocab(self) -> Any:
        """The llama.cpp vocabulary handle, for engine modules that call the C API."""
        return self.tokenizer.vocab

    # -- tokens (see engine.tokenizer) -------------------------------------------------

    @property
    def has_chat_template(self) -> bool:
        return self.tokenizer.has_chat_template

    @property
    def marker_ids(self) -> frozenset[int]:
        return self.tokenizer.marker_ids

    def tokenize(self, text: str, *, add_bos: bool = True, special: bool = False) -> list[int]:
        return self.tokenizer.tokenize(text, add_bos=add_bos, special=special)

    def token_bytes(self, token: int, *, special: bool = False) -> bytes:
        return self.tokenizer.token_bytes(token, special=special)

    def is_end_of_generation(self, token: int) -> bool:
        return self.tokenizer.is_end_of_generation(token)

    def chat_tokens(
        self,
        messages: Sequence[Message],
        *,
        special: bool = False,
        thinking: Thinking | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> list[int]:
        return self.tokenizer.chat_tokens(messages, special=special, thinking=thinking, tools=tools)

    def chat_prompt(
        self,
        messages: Sequence[Message],
        *,
        special: bool = False,
        thinking: Thinking | None = None,
        media: bool = False,
    ) -> tuple[list[int], int]:
        """The chat prompt's tokens and the length of its preamble (see Tokenizer)."""
        return self.tokenizer.chat_prompt(messages, special=special, thinking=thinking, media=media)

    def completion_tokens(self, text: str, *, special: bool = False) -> list[int]:
        return self.tokenize(text, add_bos=True, special=special)

    def prompt_text(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.prompt_text(tokens)

    def splitter(self, prompt_tokens: Sequence[int]) -> Splitter | None:
        return self.tokenizer.splitter(prompt_tokens)

    # -- attachments (see engine.vision) -----------------------------------------------

    def use_projector(self, path: Path) -> Projector:
        """Load the projector (mmproj) file that lets this model read attachments."""
        from llmcli.engine.vision import Projector

        if self.projector is None:
            self.projector = Projector(
                self.llama,
                path,
                threads=self.threads,
                gpu=self.gpu_layers != 0,
                verbose=self.options.verbose,
            )
        return self.projector

    def media_prompt(
        self, prompt_tokens: Sequence[int], attachments: Sequence[Attachment]
    ) -> MediaPrompt:
        """The prompt with each MEDIA_SLOT replaced by its attachment's chunks (see
        engine.vision); pass it to `generate` as `media`, with its `tokens`."""
        if self.projector is None:
            raise LlmcliError("no projector is loaded for this model")
        return self.projector.prompt(prompt_tokens, attachments)

    # -- generation --------------------------------------------------------------------

    def check_fits(self, prompt_tokens: Sequence[int]) -> None:
        n = len(prompt_tokens)
        if n >= self.n_ctx:
            raise ContextOverflowError(
                f"the prompt is {n} tokens but the context window holds {self.n_ctx}",
                hint=f"raise it with --ctx {_round_up(n + 512)} or shorten the prompt",
            )

    def prompt_cache(self, folder: Path | None) -> PromptCache | None:
        """The on-disk prompt cache in `folder` for this model (None: none)."""
        if folder is None:
            return None
        cache = self._prompt_cache
        if cache is None or cache.root != folder:
            self.finish_saving()
            identity = model_identity(
                self.options.path,
                flash_attn=self.options.flash_attn,
                setup=context_setup.identity(self.options),
            )
            cache = PromptCache(folder, self.kv, identity=identity, n_ctx=self.n_ctx)
            self._prompt_cache = cache
        return cache

    def finish_saving(self) -> None:
        """Wait until the prompt state being saved in the background is on disk."""
        if self._prompt_cache is not None:
            self._prompt_cache.wait()

    def generate(
        self,
        prompt_tokens: Sequence[int],
        sampling: Sampling,
        decoding: Decoding | None = None,
        *,
        logprobs: int | None = None,
        media: MediaPrompt | None = None,
    ) -> Generation:
        """The answer to a prompt, generated as the returned Generation is iterated (a
        reasoning model's thinking comes apart from the answer).

        `decoding.lookup` asks for prompt-lookup decoding, used only for plain greedy
        choice; `decoding.prompt_cache` names the folder where the KV state of long prompts
        is loaded from and saved to.
        `logprobs` (a number of alternatives) records each token's log-probability in
        `result.logprobs`; sampling is unchanged.
        `media`: the prompt's attachments (`prompt_tokens` is its `tokens`); the prompt
        caches and lookup decoding are then left out.
        """
        self.check_fits(prompt_tokens)
        result = GenerationResult()
        if media is not None:
            result.image_tokens = media.media_tokens
            decoding = Decoding(lookup=False)
        parts = self._parts(
            prompt_tokens, sampling, result, decoding or Decoding(), logprobs, media
        )
        return Generation(parts, result)

    def _parts(
        self,
        prompt_tokens: Sequence[int],
        sampling: Sampling,
        result: GenerationResult,
        decoding: Decoding,
        logprobs: int | None,
        media: MediaPrompt | None,
    ) -> Generator[Part, None, None]:
        self.make_room(len(prompt_tokens) + _ROOM_AHEAD)
        sequence = SequenceDecoder(
            self.tokenizer,
            prompt_tokens,
            sampling,
            room=self.n_ctx - len(prompt_tokens),
            top_logprobs=logprobs,
        )
        self.llama.set_seed(sequence.seed)
        sequence.fill(result)
        result.load_s = self.load_s
        result.prompt_tokens = len(prompt_tokens)
        llama_cpp.llama_perf_context_reset(self.llama.ctx)
        start = time.perf_counter()
        if media is None:
            self._prepare(prompt_tokens, result, decoding)
        else:
            self._preamble_held = []  # the cache now holds the attachments' positions
            result.prompt_tokens_evaluated = media.evaluate(self.kv, self.llama)

        first = last = start
        # Lookup checks several tokens per step and keeps no logits for the ones it
        # accepts; it picks the same tokens as plain decoding, so it is simply left out.
        lookup = decoding.lookup and logprobs is None
        generator = crash_guard.throughout(
            self._tokens(prompt_tokens, sampling, result, lookup=lookup, seed=sequence.seed)
        )
        try:
            if sequence.done:
                return
            for token in generator:
                last = time.perf_counter()
                if result.completion_tokens == 0 and first == start:
                    first = last
                    result.ttft_s = first - start
                    self._count_prompt_evaluation(result)
                logits = self.kv.last_logits() if sequence.wants_logits else None
                parts = sequence.feed(token, logits)
                sequence.fill(result)
                yield from parts
                if sequence.done:
                    return
                # Before the generator evaluates this token (and maybe a draft after it).
                self.make_room(self.kv.n_tokens + _ROOM_AHEAD)
            parts = sequence.finish("length")
            sequence.fill(result)
            yield from parts
        finally:
            generator.close()
            if result.completion_tokens > 1 and last > first:
                result.generation_tps = (result.completion_tokens - 1) / (last - first)

    def _prepare(
        self, prompt_tokens: Sequence[int], result: GenerationResult, decoding: Decoding
    ) -> None:
        """Bring the KV cache as close to the prompt as the caches allow: the on-disk
        prompt cache, the preamble held from an earlier prompt, what is reusable."""
        prompt_cache = self.prompt_cache(decoding.prompt_cache)
        if prompt_cache is not None:
            result.prompt_cache_tokens = prompt_cache.restore(prompt_tokens)
        if result.prompt_cache_tokens:
            self._preamble_held = []  # those positions now come from a saved long prompt
        preamble = decoding.preamble
        if preamble_applies(len(prompt_tokens), preamble):
            # Every prompt with this preamble is evaluated the same way, whatever the cache
            # held before: the preamble as a batch of its own, then the rest in one batch.
            head = list(prompt_tokens[:preamble])
            if self._preamble_held == head and self.kv.shared_prefix(head) == preamble:
                self.kv.rewind(preamble)  # a longer shared prefix goes back to the rest
            else:
                result.prompt_cache_saved, restored = self._preamble(head, prompt_cache)
                result.prompt_cache_tokens = max(result.prompt_cache_tokens, restored)
                self._preamble_held = head
        reused = self.kv.reusable(prompt_tokens)
        result.prompt_tokens_evaluated = len(prompt_tokens) - reused
        if prompt_cache is not None and prompt_cache.worth_saving(prompt_tokens, reused):
            # Evaluated now, in one call as generation would, so that its state can be
            # saved; generation then finds it complete, with fresh logits.
            self.kv.evaluate_prompt(prompt_tokens)
            prompt_cache.save(prompt_tokens)
            result.prompt_cache_saved = True

    def _preamble(self, preamble: Sequence[int], cache: PromptCache | None) -> tuple[bool, int]:
        """Make the KV cache hold the prompt's preamble alone, computed as a batch of its
        own: loaded from the prompt cache, or evaluated from position 0 (and saved there).
        Either way the rest of the prompt is then evaluated after the same state, so the
        answer depends neither on the cache nor on what was evaluated before. Returns
        (saved, tokens loaded)."""
        if cache is not None and cache.restore_exact(preamble):
            return False, len(preamble)
        self.kv.rewind(0)
        self.kv.evaluate(preamble)
        if cache is None:
            return False, 0
        cache.save(preamble)
        return True, 0

    def _count_prompt_evaluation(self, result: GenerationResult) -> None:
        """Prompt tokens evaluated, from the engine's own counters. A batch of several
        tokens counts as prompt evaluation; a lone token counts as generation, and that
        counter never reads below 1, so it says only that one token was evaluated."""
        perf = llama_cpp.llama_perf_context(self.llama.ctx)
        result.prompt_tokens_evaluated = int(perf.n_p_eval) if perf.n_p_eval > 0 else 1
        if result.ttft_s > 0:
            result.prompt_tps = result.prompt_tokens_evaluated / result.ttft_s

    def _tokens(
        self,
        prompt_tokens: Sequence[int],
        sampling: Sampling,
        result: GenerationResult,
        *,
        lookup: bool,
        seed: int,
    ) -> Generator[int, None, None]:
        if sampling.grammar_trigger is not None:
            yield from self._lazy_grammar_tokens(prompt_tokens, sampling, seed)
            return
        if lookup and lookup_applies(sampling):
            stats = LookupStats()
            try:
                yield from greedy_tokens(
                    self.kv,
                    prompt_tokens,
                    stats,
                    n_ctx=self.n_ctx,
                    costs=self.batch_costs,
                    is_end=self.is_end_of_generation,
                )
            finally:
                result.draft_tokens, result.accepted_tokens = stats.drafted, stats.accepted
            return
        yield from self.llama.generate(
            prompt_tokens,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            min_p=sampling.min_p,
            temp=sampling.temperature,
            repeat_penalty=sampling.repeat_penalty,
            grammar=LlamaGrammar.from_string(sampling.grammar) if sampling.grammar else None,
        )

    def _lazy_grammar_tokens(
        self, prompt_tokens: Sequence[int], sampling: Sampling, seed: int
    ) -> Generator[int, None, None]:
        """Tokens sampled with the Scheduler's sampler chain, whose grammar can wait for
        its trigger (the bindings' generate() takes only a grammar that applies from the
        first token). The prompt is evaluated as generate() would: what the cache does
        not hold, in one call."""
        sampler = make_sampler(self.llama, sampling, seed)
        try:
            if not self.kv.holds_exactly(prompt_tokens):
                self.kv.evaluate_prompt(prompt_tokens)
            while True:
                token = self.kv.sample(sampler)
                yield token
                self.kv.evaluate([token])
        finally:
            sampler.close()  # type: ignore[no-untyped-call]


# Positions kept free ahead of the next evaluation in a context that can still grow: the
# token just sampled and the longest draft of lookup decoding after it.
_ROOM_AHEAD = DRAFT_MAX + 2


def _round_up(n: int, step: int = 1024) -> int:
    return ((n + step - 1) // step) * step
