"""Creating the `Llama`: the engine setup to load it in, and loading it safely.

The setup (weight repacking, tokens per step) is the one given, else the one
LLMCLI_ENGINE_SETUP pins, else the one measured safe and fastest for this model on this
machine (probed in child processes the first time).
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import llama_cpp

from llmcli.engine import crash_guard, rpc
from llmcli.engine.context_setup import Adapter, context_arguments
from llmcli.engine.log import quiet_engine_log
from llmcli.engine.split import SplitReport, split_recorded
from llmcli.engine.types import LoadOptions
from llmcli.errors import LlmcliError, ModelInvalidError, UsageError
from llmcli.tuning.child_probe import ProbeSpec, run_probe
from llmcli.tuning.choose import Decision, decide
from llmcli.tuning.setups import NO_REPACK, EngineSetup, setup_from_env
from llmcli.tuning.verdicts import crash_record, crashes_file


def gpu_offload_supported() -> bool:
    from llmcli.engine.system_info import gpu_devices

    return bool(gpu_devices())


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
        value.progress_callback = _go_on_loading
        return value

    low.llama_model_default_params = params
    try:
        yield
    finally:
        low.llama_model_default_params = original


# Ctrl-C presses held back while llama.cpp loads (see interrupts_held).
_held: list[int] = []


@llama_cpp.llama_progress_callback  # type: ignore[untyped-decorator]
def _go_on_loading(progress: float, user_data: ctypes.c_void_p) -> bool:
    # Returning False makes llama.cpp give up the load: a large model need not finish
    # loading before a Ctrl-C takes effect.
    return not _held


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C while llama.cpp loads a model takes effect when the load returns.

    During a load llama.cpp calls back into Python (its log, its progress), and Python
    runs signal handlers there: a KeyboardInterrupt raised inside a ctypes callback is
    printed as "ignored" (to /dev/null, as the bindings silence stderr while loading) and
    lost, so the answer would come anyway. The press is only noted meanwhile; the load
    gives up at its next progress report, and KeyboardInterrupt is raised here after."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield  # Ctrl-C is ignored, or another thread loads: nothing to hold
        return
    _held.clear()
    signal.signal(signal.SIGINT, lambda signum, frame: _held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if _held:
            _held.clear()
            _deliver(previous)


def _deliver(handler: Callable[[int, FrameType | None], Any]) -> None:
    """Hand a held Ctrl-C to the handler that was in place (a KeyboardInterrupt for
    Python's own), as if it had arrived now."""
    if handler is signal.default_int_handler:
        raise KeyboardInterrupt
    handler(signal.SIGINT, None)


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


def decide_setup(
    options: LoadOptions,
    *,
    threads: int,
    key: str,
    setup: EngineSetup | None,
    notify: Callable[[str], None] | None,
) -> Decision:
    """The engine setup to load in (see the module's doc); `key` identifies the model
    among those measured, `notify` hears about a first measurement."""
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
        threads=threads,
        n_ctx=min(options.n_ctx, 2048),
        n_batch=options.n_batch,
        n_gpu_layers=options.n_gpu_layers,
        flash_attn=options.flash_attn,
        embedding=options.embedding,
        pooling=options.pooling,
    )
    return decide(
        key
        + ("|embedding" if options.embedding else "")
        + ("|rank" if options.pooling == "rank" else ""),
        probe=lambda s: run_probe(spec, s),
        threads=threads,
        embedding=options.embedding,
        pinned=pinned,
        notify=notify,
        model_name=options.path.name,
    )


@dataclass
class Loaded:
    llama: llama_cpp.Llama
    # The --lora adapter, applied to the Llama's context (and to be applied to any other).
    adapter: Adapter | None
    # How the layers were spread over devices: read from the load log with --rpc.
    split: SplitReport | None
    seconds: float


def _llama_arguments(
    options: LoadOptions, setup: EngineSetup, *, threads: int, gpu_layers: int
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model_path": str(options.path),
        "n_ctx": min(options.n_ctx, options.start_ctx or options.n_ctx),
        "n_batch": options.n_batch,
        "n_ubatch": setup.ubatch or options.n_batch,
        "n_threads": threads,
        "n_threads_batch": threads,
        "n_gpu_layers": gpu_layers,
        "flash_attn": options.flash_attn,
        "embedding": options.embedding,
        "vocab_only": options.vocab_only,
        "verbose": options.verbose,
        **context_arguments(options),
    }
    if options.embedding:
        kwargs["pooling_type"] = {
            "mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            "rank": llama_cpp.LLAMA_POOLING_TYPE_RANK,
        }.get(options.pooling, llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED)
    if options.tensor_split:
        kwargs["tensor_split"] = list(options.tensor_split)
    return kwargs


def load_llama(
    options: LoadOptions, setup: EngineSetup, *, threads: int, gpu_layers: int, key: str
) -> Loaded:
    """Load the model in `setup`, with a guard that turns a crash of the engine into a
    record of which setup crashed (`key` names the model in it) and a clear message."""
    kwargs = _llama_arguments(options, setup, threads=threads, gpu_layers=gpu_layers)
    quiet_engine_log(options.verbose)
    if not options.vocab_only:
        crash_guard.guard(
            f"running {options.path.name} (engine setup {setup.name})",
            crashes_file(),
            crash_record(setup.name, key),
            rpc_workers=options.rpc,
        )
    split: SplitReport | None = None
    start = time.perf_counter()
    try:
        with interrupts_held(), contextlib.ExitStack() as stack:
            if options.rpc:
                rpc.quiet_rpc_aborts()
                rpc.add_workers(options.rpc)
                split = stack.enter_context(split_recorded())
            stack.enter_context(weights_repacked(setup.repack))
            stack.enter_context(own_templates_only())
            stack.enter_context(crash_guard.evaluating())
            llama = llama_cpp.Llama(**kwargs)
    except ValueError as exc:
        if "context" in str(exc):
            quantized = {options.cache_type_k, options.cache_type_v} - {"f16"}
            raise LlmcliError(
                f"could not create a context of {options.n_ctx} tokens (not enough memory?)",
                hint="try a smaller --ctx"
                + (
                    ", or --cache-type-k/-v f16: this backend may lack the quantized "
                    "cache's kernels"
                    if quantized
                    else ""
                ),
            ) from exc
        raise ModelInvalidError(
            f"could not load {options.path}: the file is truncated, corrupt "
            "or of an architecture this llama.cpp build does not know"
        ) from exc
    adapter = None
    if options.lora is not None and not options.vocab_only:
        try:
            adapter = Adapter(
                llama.model, options.lora, options.lora_scale, model_name=options.path.name
            )
            adapter.apply(llama.ctx)
        except BaseException:
            llama.close()
            raise
    return Loaded(llama, adapter, split, time.perf_counter() - start)
