"""Loading a GGUF and generating from it with llama-cpp-python."""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import secrets
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import LlamaGrammar

from llmcli.engine import crash_guard, rpc
from llmcli.engine.chat_prompt import Segment, merge_system, segments
from llmcli.engine.log import quiet_engine_log
from llmcli.engine.lookup import BatchCosts, LookupStats, greedy_tokens
from llmcli.engine.split import SplitReport, split_recorded
from llmcli.engine.stops import StopScanner
from llmcli.engine.types import Decoding, GenerationResult, LoadOptions, Message, Sampling
from llmcli.errors import (
    ContextOverflowError,
    LlmcliError,
    ModelInvalidError,
    ModelNotFoundError,
    UsageError,
)
from llmcli.tuning.choose import Decision, decide
from llmcli.tuning.identity import model_key
from llmcli.tuning.probe import ProbeSpec, run_probe
from llmcli.tuning.setups import NO_REPACK, EngineSetup, setup_from_env
from llmcli.tuning.threads import choose_threads
from llmcli.tuning.verdicts import crash_record, crashes_file

GGUF_MAGIC = b"GGUF"


def gpu_offload_supported() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


def check_gguf_file(path: Path) -> None:
    """Fail early, with a clear message, on what llama.cpp would only call 'failed'."""
    if not path.exists():
        raise ModelNotFoundError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelNotFoundError(f"model path is a directory, not a GGUF file: {path}")
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ModelNotFoundError(f"cannot read model file {path}: {exc.strerror}") from exc
    if head[:4] != GGUF_MAGIC:
        raise ModelInvalidError(f"not a GGUF model file: {path}")
    if len(head) < 8:
        raise ModelInvalidError(f"GGUF file is truncated: {path}")


@contextlib.contextmanager
def weights_repacked(repack: bool) -> Iterator[None]:
    """`Llama` takes its model parameters from llama_model_default_params() and offers
    no argument for weight repacking, so the defaults it reads are adjusted while it
    loads."""
    low = llama_cpp.llama_cpp
    original = low.llama_model_default_params

    def params() -> Any:
        value = original()
        value.use_extra_bufts = repack
        return value

    low.llama_model_default_params = params
    try:
        yield
    finally:
        low.llama_model_default_params = original


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
        self._key = "" if options.vocab_only else model_key(options.path)
        self.decision = self._decide(setup, notify)
        self.setup = self.decision.setup
        verdict = self.decision.verdict
        self.batch_costs = BatchCosts.measured(verdict.batch_cost) if verdict else BatchCosts()
        kwargs: dict[str, Any] = {
            "model_path": str(options.path),
            "n_ctx": options.n_ctx,
            "n_batch": options.n_batch,
            "n_ubatch": self.setup.ubatch or options.n_batch,
            "n_threads": threads,
            "n_threads_batch": threads,
            "n_gpu_layers": gpu_layers,
            "flash_attn": options.flash_attn,
            "embedding": options.embedding,
            "vocab_only": options.vocab_only,
            "verbose": options.verbose,
        }
        if options.embedding:
            kwargs["pooling_type"] = (
                llama_cpp.LLAMA_POOLING_TYPE_MEAN
                if options.pooling == "mean"
                else llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED
            )
        if options.tensor_split:
            kwargs["tensor_split"] = list(options.tensor_split)
        quiet_engine_log(options.verbose)
        if not options.vocab_only:
            crash_guard.guard(
                f"running {options.path.name} (engine setup {self.setup.name})",
                crashes_file(),
                crash_record(self.setup.name, self._key),
                rpc_workers=options.rpc,
            )
        # How the layers were spread over devices: read from the load log with --rpc.
        self.split: SplitReport | None = None
        start = time.perf_counter()
        try:
            with contextlib.ExitStack() as stack:
                if options.rpc:
                    rpc.quiet_rpc_aborts()
                    rpc.add_workers(options.rpc)
                    self.split = stack.enter_context(split_recorded())
                stack.enter_context(weights_repacked(self.setup.repack))
                self.llama = llama_cpp.Llama(**kwargs)
        except ValueError as exc:
            if "context" in str(exc):
                raise LlmcliError(
                    f"could not create a context of {options.n_ctx} tokens (not enough memory?)",
                    hint="try a smaller --ctx",
                ) from exc
            raise ModelInvalidError(
                f"could not load {options.path}: the file is truncated, corrupt "
                "or of an architecture this llama.cpp build does not know"
            ) from exc
        self.load_s = time.perf_counter() - start
        self._vocab = llama_cpp.llama_model_get_vocab(self.llama.model)
        self._piece_buf = ctypes.create_string_buffer(256)
        self._formatter = self._make_formatter()

    def _decide(self, setup: EngineSetup | None, notify: Callable[[str], None] | None) -> Decision:
        options = self.options
        if setup is not None:
            return Decision(setup, None)
        if options.rpc and not options.vocab_only:
            # A probe child would have to reach the workers too: the setup is the one
            # pinned, else the weights as stored (the layers run on the workers anyway).
            try:
                return Decision(setup_from_env() or NO_REPACK, None)
            except ValueError as exc:
                raise UsageError(f"LLMCLI_ENGINE_SETUP: {exc}") from None
        if options.vocab_only:
            # Nothing is computed, so nothing can fault; repacking would only cost time.
            return Decision(NO_REPACK, None)
        try:
            pinned = setup_from_env()
        except ValueError as exc:
            raise UsageError(f"LLMCLI_ENGINE_SETUP: {exc}") from None
        spec = ProbeSpec(
            path=str(options.path),
            setup="",
            threads=self.threads,
            n_ctx=min(options.n_ctx, 2048),
            n_batch=options.n_batch,
            n_gpu_layers=options.n_gpu_layers,
            flash_attn=options.flash_attn,
            embedding=options.embedding,
            pooling=options.pooling,
        )
        return decide(
            self._key + ("|embedding" if options.embedding else ""),
            probe=lambda s: run_probe(spec, s),
            threads=self.threads,
            embedding=options.embedding,
            pinned=pinned,
            notify=notify,
            model_name=options.path.name,
        )

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        self.llama.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- facts -------------------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        # llama.cpp pads small contexts up (to 256) but the bindings size their token
        # buffer by the request: the smaller of the two is the real limit.
        return min(self.options.n_ctx, int(self.llama.n_ctx()))

    @property
    def chat_template(self) -> str | None:
        return self.llama.metadata.get("tokenizer.chat_template") or None

    @property
    def has_chat_template(self) -> bool:
        return self._formatter is not None

    @property
    def vocab(self) -> Any:
        """The llama.cpp vocabulary handle, for engine modules that call the C API."""
        return self._vocab

    @property
    def name(self) -> str:
        return self.llama.metadata.get("general.name") or self.options.path.name

    # -- tokens ------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = True, special: bool = False) -> list[int]:
        data = text.encode("utf-8", errors="surrogateescape")
        return list(self.llama.tokenize(data, add_bos=add_bos, special=special))

    def token_bytes(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token (pieces of any length; the engine drops long ones)."""
        buf = self._piece_buf
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def chat_tokens(self, messages: Sequence[Message], *, special: bool = False) -> list[int]:
        """Tokens of a chat prompt rendered with the model's own template.

        Message content is plain text unless `special` is set, so it cannot forge turns.
        """
        if self._formatter is None:
            raise LlmcliError("this model has no chat template")
        try:
            parts = segments(self._render, messages)
        except ValueError:
            # Some templates (Gemma's) refuse a system role.
            if not any(m["role"] == "system" for m in messages):
                raise
            parts = segments(self._render, merge_system(messages))
        return self._tokenize_segments(parts, special=special)

    def completion_tokens(self, text: str, *, special: bool = False) -> list[int]:
        return self.tokenize(text, add_bos=True, special=special)

    def _tokenize_segments(self, parts: Sequence[Segment], *, special: bool) -> list[int]:
        tokens: list[int] = []
        for part in parts:
            tokens += self.tokenize(part.text, add_bos=False, special=part.special or special)
        return tokens

    def _make_formatter(self) -> Jinja2ChatFormatter | None:
        template = self.chat_template
        if not template:
            return None
        llama = self.llama

        def text_of(token: int) -> str:
            if token < 0:
                return ""
            return str(llama._model.token_get_text(token))

        return Jinja2ChatFormatter(
            template=template,
            eos_token=text_of(llama.token_eos()),
            bos_token=text_of(llama.token_bos()),
        )

    def _render(self, messages: Sequence[Message]) -> str:
        assert self._formatter is not None
        return self._formatter(messages=list(messages)).prompt  # type: ignore[arg-type]

    # -- generation --------------------------------------------------------------------

    def check_fits(self, prompt_tokens: Sequence[int]) -> None:
        n = len(prompt_tokens)
        if n >= self.n_ctx:
            raise ContextOverflowError(
                f"the prompt is {n} tokens but the context window holds {self.n_ctx}",
                hint=f"raise it with --ctx {_round_up(n + 512)} or shorten the prompt",
            )

    def cached_prefix(self, prompt_tokens: Sequence[int]) -> int:
        """Prompt tokens already in the KV cache that the next generation will reuse."""
        cached = self.llama.input_ids[: self.llama.n_tokens]
        n = 0
        for a, b in zip(cached, prompt_tokens, strict=False):
            if a != b:
                break
            n += 1
        # The engine always re-evaluates at least the last prompt token.
        return min(n, len(prompt_tokens) - 1)

    def stream(
        self,
        prompt_tokens: Sequence[int],
        sampling: Sampling,
        result: GenerationResult,
        decoding: Decoding | None = None,
    ) -> Iterator[str]:
        """Yield the answer's text as it is generated; `result` is filled in as it goes,
        so a caller interrupted mid-stream still has what was produced.

        `decoding.lookup` asks for prompt-lookup decoding, used only for plain greedy
        choice; `decoding.prompt_cache` loads and saves the KV state of long prompts.
        """
        decoding = decoding or Decoding()
        prompt_cache = decoding.prompt_cache
        self.check_fits(prompt_tokens)
        llama = self.llama
        budget = self.n_ctx - len(prompt_tokens)
        if sampling.max_tokens is not None:
            budget = min(budget, sampling.max_tokens)
        seed = sampling.seed if sampling.seed is not None else secrets.randbits(31)
        llama.set_seed(seed)
        result.seed = seed
        result.load_s = self.load_s
        result.prompt_tokens = len(prompt_tokens)
        result.finish_reason = "length"
        llama_cpp.llama_perf_context_reset(llama.ctx)
        start = time.perf_counter()
        if prompt_cache is not None:
            result.prompt_cache_tokens = prompt_cache.restore(prompt_tokens)
        reused = self.cached_prefix(prompt_tokens)
        result.prompt_tokens_evaluated = len(prompt_tokens) - reused
        if prompt_cache is not None and prompt_cache.worth_saving(prompt_tokens, reused):
            self._evaluate_prompt(prompt_tokens, reused)
            prompt_cache.save(prompt_tokens)
            result.prompt_cache_saved = True

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopScanner(sampling.stop)
        pieces: list[str] = []
        first = last = start
        generator = self._tokens(prompt_tokens, sampling, result, lookup=decoding.lookup)
        try:
            if budget <= 0:
                return
            for token in generator:
                last = time.perf_counter()
                if result.completion_tokens == 0:
                    first = last
                    result.ttft_s = first - start
                    self._count_prompt_evaluation(result)
                if self.is_end_of_generation(token):
                    result.finish_reason = "stop"
                    break
                result.completion_tokens += 1
                text = stops.feed(decoder.decode(self.token_bytes(token)))
                if text:
                    pieces.append(text)
                    result.text = "".join(pieces)
                    yield text
                if stops.stopped:
                    result.finish_reason = "stop"
                    break
                if result.completion_tokens >= budget:
                    break
            tail = stops.feed(decoder.decode(b"", final=True)) + stops.flush()
            if tail:
                pieces.append(tail)
                result.text = "".join(pieces)
                yield tail
        finally:
            generator.close()
            if result.completion_tokens > 1 and last > first:
                result.generation_tps = (result.completion_tokens - 1) / (last - first)

    def _count_prompt_evaluation(self, result: GenerationResult) -> None:
        """Prompt tokens evaluated, from the engine's own counters. A batch of several
        tokens counts as prompt evaluation; a lone token counts as generation, and that
        counter never reads below 1, so it says only that one token was evaluated."""
        perf = llama_cpp.llama_perf_context(self.llama.ctx)
        result.prompt_tokens_evaluated = int(perf.n_p_eval) if perf.n_p_eval > 0 else 1
        if result.ttft_s > 0:
            result.prompt_tps = result.prompt_tokens_evaluated / result.ttft_s

    @staticmethod
    def lookup_applies(sampling: Sampling) -> bool:
        """Prompt-lookup decoding reproduces plain decoding only for plain greedy choice."""
        return (
            sampling.temperature == 0
            and sampling.grammar is None
            and sampling.repeat_penalty == 1.0
        )

    def _tokens(
        self,
        prompt_tokens: Sequence[int],
        sampling: Sampling,
        result: GenerationResult,
        *,
        lookup: bool,
    ) -> Generator[int, None, None]:
        if lookup and self.lookup_applies(sampling):
            stats = LookupStats()
            try:
                yield from greedy_tokens(self, prompt_tokens, stats)
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

    def rewind(self, n_keep: int) -> None:
        """Forget every position from `n_keep` on: the KV cache and the token record."""
        self.llama._ctx.kv_cache_seq_rm(0, n_keep, -1)
        self.llama.n_tokens = n_keep

    def _evaluate_prompt(self, prompt_tokens: Sequence[int], reused: int) -> None:
        """Evaluate the prompt now, in one call as generation would, so its state can be
        saved; generation then finds it complete, with fresh logits, and samples at once."""
        self.rewind(reused)
        self.llama.eval(prompt_tokens[reused:])


def _round_up(n: int, step: int = 1024) -> int:
    return ((n + step - 1) // step) * step
