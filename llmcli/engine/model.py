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

from llmcli.engine import crash_guard, reasoning, rpc
from llmcli.engine.chat_prompt import Segment, merge_system, segments
from llmcli.engine.llama_state import KvState
from llmcli.engine.log import quiet_engine_log
from llmcli.engine.logprobs import TokenLogprob, token_logprob
from llmcli.engine.lookup import BatchCosts, LookupStats, greedy_tokens
from llmcli.engine.prompt_cache import PromptCache, model_identity
from llmcli.engine.reasoning import Kind, ReasoningFormat, Splitter, Thinking
from llmcli.engine.split import SplitReport, split_recorded
from llmcli.engine.stops import StopScanner
from llmcli.engine.types import Decoding, GenerationResult, LoadOptions, Message, Sampling
from llmcli.errors import (
    ChatTemplateError,
    ContextOverflowError,
    LlmcliError,
    ModelInvalidError,
    UsageError,
)
from llmcli.gguf_header import check_gguf_file
from llmcli.tuning.choose import Decision, decide
from llmcli.tuning.identity import model_key
from llmcli.tuning.probe import ProbeSpec, run_probe
from llmcli.tuning.setups import NO_REPACK, EngineSetup, setup_from_env
from llmcli.tuning.threads import choose_threads
from llmcli.tuning.verdicts import crash_record, crashes_file


def gpu_offload_supported() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


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


@contextlib.contextmanager
def own_templates_only() -> Iterator[None]:
    """`Llama(...)` compiles every chat template in the GGUF for its own chat API, which
    llmcli does not use: a template that does not parse would stop the load before llmcli
    could say which template failed. While loading, that compilation is skipped."""
    from llama_cpp import llama_chat_format

    original = llama_chat_format.Jinja2ChatFormatter

    class Skipped:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def to_chat_handler(self) -> None:
            return None

    llama_chat_format.Jinja2ChatFormatter = Skipped  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        llama_chat_format.Jinja2ChatFormatter = original  # type: ignore[misc]


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
        self.batch_costs = (
            BatchCosts.measured(verdict.batch_cost, batched=self.setup.ubatch is None)
            if verdict
            else BatchCosts()
        )
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
                stack.enter_context(own_templates_only())
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
        # The KV cache and the Llama's record of it change only through this.
        self.kv = KvState(self.llama)
        self._prompt_cache: PromptCache | None = None
        self._vocab = llama_cpp.llama_model_get_vocab(self.llama.model)
        self._piece_buf = ctypes.create_string_buffer(256)
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._template_error: str | None = None
        self._formatter = self._make_formatter()
        self.reasoning, self._marker_ids = self._reasoning_format()

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
        self.finish_saving()
        self.kv.close()
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
        """The template in use: the one given in the load options, else the GGUF's."""
        if self.options.chat_template is not None:
            return self.options.chat_template
        return self.llama.metadata.get("tokenizer.chat_template") or None

    @property
    def has_chat_template(self) -> bool:
        """True also for a template that does not parse: using it says why it fails."""
        return self._formatter is not None or self._template_error is not None

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

    def chat_tokens(
        self,
        messages: Sequence[Message],
        *,
        special: bool = False,
        thinking: Thinking | None = None,
    ) -> list[int]:
        """Tokens of a chat prompt rendered with the model's own template.

        Message content is plain text unless `special` is set, so it cannot forge turns.
        `thinking` reaches the template the way it expects (see `engine.reasoning`).
        """
        if self._formatter is None:
            if self._template_error is not None:
                raise self._template_failed(self._template_error)
            raise LlmcliError("this model has no chat template")
        kwargs, messages = reasoning.template_inputs(
            self.reasoning, thinking or Thinking(), messages
        )

        def render(msgs: Sequence[Message]) -> str:
            return self._render(msgs, kwargs)

        try:
            try:
                parts = segments(render, messages)
            except ValueError:
                # Some templates (Gemma 2, older Mistral) refuse a system role.
                if not any(m["role"] == "system" for m in messages):
                    raise
                parts = segments(render, merge_system(messages))
        except Exception as exc:  # any failure inside a template: Jinja, types, raise_exception
            raise self._template_failed(f"{type(exc).__name__}: {exc}") from exc
        return self._tokenize_segments(parts, special=special)

    def _template_failed(self, why: str) -> ChatTemplateError:
        source = (
            "the template given with --template"
            if self.options.chat_template
            else (f"the chat template of {self.options.path.name}")
        )
        return ChatTemplateError(
            f"{source} failed: {' '.join(why.split())}",
            hint="use --raw for a plain text completion, or --template FILE for another template",
        )

    def prompt_text(self, tokens: Sequence[int]) -> str:
        """The text of prompt tokens exactly as the model reads them, control tokens included."""
        data = b"".join(self.token_bytes(t, special=True) for t in tokens)
        return data.decode("utf-8", errors="replace")

    def completion_tokens(self, text: str, *, special: bool = False) -> list[int]:
        return self.tokenize(text, add_bos=True, special=special)

    def _tokenize_segments(self, parts: Sequence[Segment], *, special: bool) -> list[int]:
        """As llama.cpp does: a template that writes the BOS text itself does not get a
        second one; BOS is added only where the vocabulary says the model wants it."""
        tokens: list[int] = []
        parts = list(parts)
        bos = self.llama.token_bos()
        if self._add_bos and bos >= 0:
            bos_text = self._text_of(bos)
            if parts and parts[0].special and bos_text and parts[0].text.startswith(bos_text):
                parts[0] = Segment(parts[0].text[len(bos_text) :], True)
            tokens.append(bos)
        for part in parts:
            tokens += self.tokenize(part.text, add_bos=False, special=part.special or special)
        return tokens

    def _text_of(self, token: int) -> str:
        if token < 0:
            return ""
        text: bytes = llama_cpp.llama_vocab_get_text(self._vocab, token)
        return text.decode("utf-8")

    def _make_formatter(self) -> Jinja2ChatFormatter | None:
        template = self.chat_template
        if not template:
            return None
        llama = self.llama
        try:
            return Jinja2ChatFormatter(
                template=template,
                eos_token=self._text_of(llama.token_eos()),
                bos_token=self._text_of(llama.token_bos()),
            )
        except Exception as exc:  # a template that does not parse
            self._template_error = f"{type(exc).__name__}: {exc}"
            return None

    @property
    def template_broken(self) -> bool:
        return self._template_error is not None

    def _render(self, messages: Sequence[Message], kwargs: dict[str, Any]) -> str:
        assert self._formatter is not None
        return self._formatter(messages=list(messages), **kwargs).prompt  # type: ignore[arg-type]

    def _reasoning_format(self) -> tuple[ReasoningFormat | None, frozenset[int]]:
        """The thinking format, from the template and the marker tokens in the vocabulary;
        and those marker tokens, which are rendered even when they are control tokens."""
        candidates = (*reasoning.HARMONY_MARKERS, reasoning.OPEN_TAG, reasoning.CLOSE_TAG)
        ids: dict[str, int] = {}
        for text in candidates:
            tokens = self.tokenize(text, add_bos=False, special=True)
            if len(tokens) == 1 and self._text_of(tokens[0]) == text:
                ids[text] = tokens[0]
        fmt = reasoning.detect(self.chat_template, ids)
        if fmt is None:
            return None, frozenset()
        return fmt, frozenset(ids[m] for m in fmt.markers if m in ids)

    @property
    def marker_ids(self) -> frozenset[int]:
        """Control tokens that mark thinking (gpt-oss's channels): rendered as text so
        a splitter can see them."""
        return self._marker_ids

    def splitter(self, prompt_tokens: Sequence[int]) -> Splitter | None:
        """A fresh splitter of thinking and answer for a generation after this prompt."""
        if self.reasoning is None:
            return None
        tail = self.prompt_text(prompt_tokens[-8:])
        return Splitter(self.reasoning, inside=reasoning.opens_thinking(tail, self.reasoning))

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
            identity = model_identity(self.options.path, flash_attn=self.options.flash_attn)
            cache = PromptCache(folder, self.kv, identity=identity, n_ctx=self.n_ctx)
            self._prompt_cache = cache
        return cache

    def finish_saving(self) -> None:
        """Wait until the prompt state being saved in the background is on disk."""
        if self._prompt_cache is not None:
            self._prompt_cache.wait()

    def stream(
        self,
        prompt_tokens: Sequence[int],
        sampling: Sampling,
        result: GenerationResult,
        decoding: Decoding | None = None,
        *,
        logprobs: int | None = None,
    ) -> Iterator[str]:
        """Yield the answer's text as it is generated (a reasoning model's thinking is
        left out, and kept in `result.reasoning`)."""
        for kind, text in self.stream_parts(
            prompt_tokens, sampling, result, decoding, logprobs=logprobs
        ):
            if kind == "answer":
                yield text

    def stream_parts(
        self,
        prompt_tokens: Sequence[int],
        sampling: Sampling,
        result: GenerationResult,
        decoding: Decoding | None = None,
        *,
        logprobs: int | None = None,
    ) -> Iterator[tuple[Kind, str]]:
        """Yield ("thinking" | "answer", text) as it is generated; `result` is filled in
        as it goes, so a caller interrupted mid-stream still has what was produced.
        A model that does not think yields only answer text.

        `decoding.lookup` asks for prompt-lookup decoding, used only for plain greedy
        choice; `decoding.prompt_cache` names the folder where the KV state of long prompts
        is loaded from and saved to.
        `logprobs` (a number of alternatives) records each token's log-probability in
        `result.logprobs`; sampling is unchanged.
        """
        decoding = decoding or Decoding()
        prompt_cache = self.prompt_cache(decoding.prompt_cache)
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
        reused = self.kv.reusable(prompt_tokens)
        result.prompt_tokens_evaluated = len(prompt_tokens) - reused
        if prompt_cache is not None and prompt_cache.worth_saving(prompt_tokens, reused):
            # Evaluated now, in one call as generation would, so that its state can be
            # saved; generation then finds it complete, with fresh logits.
            self.kv.evaluate_prompt(prompt_tokens)
            prompt_cache.save(prompt_tokens)
            result.prompt_cache_saved = True

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopScanner(sampling.stop)
        pieces: dict[Kind, list[str]] = {"thinking": [], "answer": []}
        splitter = self.splitter(prompt_tokens)
        markers = self._marker_ids
        held = 0

        def parts(text: str, final: bool = False) -> list[tuple[Kind, str]]:
            out: list[tuple[Kind, str]] = [("answer", text)] if splitter is None and text else []
            if splitter is not None:
                out = (splitter.feed(text) if text else []) + (splitter.flush() if final else [])
            for kind, piece in out:
                pieces[kind].append(piece)
            result.text = "".join(pieces["answer"])
            result.reasoning = "".join(pieces["thinking"]).strip()
            return out

        first = last = start
        # Lookup checks several tokens per step and keeps no logits for the ones it
        # accepts; it picks the same tokens as plain decoding, so it is simply left out.
        lookup = decoding.lookup and logprobs is None
        generator = self._tokens(prompt_tokens, sampling, result, lookup=lookup)
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
                was_thinking = splitter is not None and splitter.thinking
                piece = decoder.decode(self.token_bytes(token, special=token in markers))
                if logprobs is not None:
                    result.logprobs.append(self._logprob(token, logprobs, piece))
                text = stops.feed(piece)
                if text:
                    yield from parts(text)
                if splitter is not None:
                    # Tokens of a marker still held back count once it proves to open one.
                    if was_thinking or splitter.thinking:
                        result.reasoning_tokens += 1 + held
                        held = 0
                    else:
                        held = held + 1 if splitter.pending else 0
                if stops.stopped:
                    result.finish_reason = "stop"
                    break
                if result.completion_tokens >= budget:
                    break
            tail = stops.feed(decoder.decode(b"", final=True)) + stops.flush()
            yield from parts(tail, final=True)
        finally:
            generator.close()
            if result.completion_tokens > 1 and last > first:
                result.generation_tps = (result.completion_tokens - 1) / (last - first)

    def _logprob(self, token: int, k: int, piece: str) -> TokenLogprob:
        """The entry for a token just sampled: the logits it came from are still the
        engine's latest (the next evaluation has not run yet)."""
        return token_logprob(self.kv.last_logits(), token, k, piece, self._shown_bytes)

    def _shown_bytes(self, token: int) -> bytes:
        """A token's bytes; a control token's name (<|im_end|>), which has none."""
        control = bool(llama_cpp.llama_vocab_is_control(self._vocab, token))
        return self.token_bytes(token, special=control)

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


def _round_up(n: int, step: int = 1024) -> int:
    return ((n + step - 1) // step) * step
