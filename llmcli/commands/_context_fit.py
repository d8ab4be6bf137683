"""A context that fits in memory, decided from the GGUF header before anything loads (or
downloads): a default context is shrunk to what fits, and said so; a context the user
asked for (command line, config file, prompt template) that would not fit is refused
with the largest that does. Never an out-of-memory kill halfway through loading.

The plan is `memory_plan`'s, against $LLMCLI_MEMORY or the memory available now, and with
layers on a GPU, against $LLMCLI_GPU_MEMORY or what the GPU has free. With layers on RPC
workers it says nothing useful (their memory is theirs), so it is not made then.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from llmcli.commands._engine_flags import EngineFlags
from llmcli.commands._invocation import Invocation
from llmcli.errors import DoesNotFitError, ModelInvalidError
from llmcli.humanize import format_bytes
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.gguf_file.header import Header
    from llmcli.memory_plan import Offload
    from llmcli.model_refs import HubRef

ESCAPE = "--no-memory-check"
NoMemoryCheckOpt = typer.Option(
    ESCAPE,
    help="Do not plan memory before loading or downloading: load at the context asked "
    "for even when the plan says it will not fit (the weights are memory-mapped, so a "
    "model larger than memory runs, slowly).",
)


@dataclass(frozen=True)
class Wanted:
    """The context asked of a model: its size, whether the user chose it, the KV cache's
    types, and for how many sequences."""

    ctx: int
    # Typed, or set by the config file or a prompt template: refused rather than shrunk.
    asked: bool
    flags: EngineFlags
    # serve: this many sequences of `ctx` each.
    sequences: int = 1
    # As the engine takes them (-1 or None: all the GPU takes, 0: none).
    gpu_layers: int | None = None

    @classmethod
    def of(cls, context: typer.Context, invocation: Invocation, sequences: int = 1) -> Wanted:
        source = context.get_parameter_source("ctx")
        ctx = invocation.ctx or 0
        return cls(
            ctx,
            source is not None and source.name != "DEFAULT",
            invocation.engine_flags,
            sequences,
            invocation.gpu_layers,
        )

    def where(self) -> str:
        each = f" for each of {self.sequences} sequences" if self.sequences > 1 else ""
        return f"--ctx {self.ctx}{each}"


def model_that_fits(
    context: typer.Context,
    invocation: Invocation,
    ref: str | None,
    *,
    sequences: int = 1,
    check: bool = True,
) -> tuple[Path, Invocation]:
    """The model file for `ref` (downloaded unless the plan refuses it first) and
    `invocation` with a context that fits, unless `check` is off or the plan says
    nothing about where the model goes."""
    from llmcli.resolve.with_progress import model_file

    if not (check and applies(invocation)):
        return model_file(ref), invocation
    wanted = Wanted.of(context, invocation, sequences)
    path = model_file(ref, before_download=before_download(wanted))
    return path, fitted(invocation, wanted, path, ref or path.name)


def applies(invocation: Invocation) -> bool:
    """Whether a plan means anything: not with layers on RPC workers."""
    return not (invocation.rpc or (invocation.rpc is None and _config_rpc()))


def offload(gpu_layers: int | None, gpu_memory: int | None = None) -> Offload | None:
    """Where the engine puts layers, for the plan: None when they all stay in RAM (a CPU
    build, --gpu-layers 0). `gpu_memory` plans for a GPU of that much free memory even
    where this build has none (`fit --gpu-memory`); else $LLMCLI_GPU_MEMORY or what the
    GPUs report free, summed."""
    from llmcli.memory_plan import Offload
    from llmcli.system_memory import gpu_memory_override

    layers = -1 if gpu_layers is None else gpu_layers
    if layers == 0:
        return None
    if gpu_memory is not None:
        return Offload(layers, gpu_memory)
    from llmcli.engine.system_info import gpus

    found = gpus()
    if not found:
        return None
    frees = [gpu.free for gpu in found]
    override = gpu_memory_override()
    known = None if None in frees else sum(f or 0 for f in frees)
    available = override if override is not None else known
    return Offload(layers, available, any(gpu.unified for gpu in found))


def _config_rpc() -> bool:
    from llmcli import config

    return bool(config.load().rpc)


def fitted(invocation: Invocation, wanted: Wanted, path: Path, name: str) -> Invocation:
    """`invocation` with a context (and, when the user left it to llmcli, a number of GPU
    layers) that fits; DoesNotFitError when none the user would accept does."""
    from llmcli.resolve.resolver import file_headers

    headers = file_headers(path)
    wanted = with_gpu_layers_that_fit(headers, wanted, on_disk=True)
    ctx = largest(headers, wanted, name, on_disk=True)
    if ctx == wanted.ctx and wanted.gpu_layers == invocation.gpu_layers:
        return invocation
    return dataclasses.replace(invocation, ctx=ctx, gpu_layers=wanted.gpu_layers)


def with_gpu_layers_that_fit(headers: Sequence[Header], wanted: Wanted, *, on_disk: bool) -> Wanted:
    """`wanted` with fewer layers on the GPU when the user did not say how many and all
    of them would not fit in its memory at the wanted context, as ollama splits a model
    (said on stderr once the model is `on_disk`); unchanged otherwise."""
    from llmcli.memory_plan import gpu_layers_that_fit, plan
    from llmcli.system_memory import memory_for_models

    layers = offload(wanted.gpu_layers) if wanted.gpu_layers is None else None
    if layers is None or layers.available is None:
        return wanted
    available = memory_for_models()
    flags = wanted.flags
    kinds = {"cache_type": flags.cache_type_k, "cache_type_v": flags.cache_type_v}
    cells = wanted.ctx * wanted.sequences
    whole = plan(headers, ctx=cells, available=available, offload=layers, **kinds)
    if whole.fits is not False or whole.gpu_bytes <= layers.available:
        return wanted
    fewer = gpu_layers_that_fit(headers, ctx=cells, available=available, offload=layers, **kinds)
    if fewer is None:
        return wanted
    if on_disk:
        console.notice(
            f"offloading {fewer} of {whole.model_layers} layers to the GPU: all of them "
            f"would need {format_bytes(whole.gpu_bytes)} of GPU memory and "
            f"{format_bytes(layers.available)} is free"
        )
    return dataclasses.replace(wanted, gpu_layers=fewer)


def largest(headers: Sequence[Header], wanted: Wanted, name: str, *, on_disk: bool) -> int:
    """The context to use: `wanted.ctx` when it fits or memory is unknown, else the
    largest smaller one that fits when the user did not ask for this one (said on
    stderr once the model is `on_disk`). Raises DoesNotFitError otherwise, naming the
    largest that fits and what to change."""
    from llmcli.memory_plan import largest_ctx, plan
    from llmcli.system_memory import memory_for_models
    from llmcli.ui.fit_view import free_memory, needed

    available = memory_for_models()
    if available is None:
        return wanted.ctx
    flags = wanted.flags
    layers = offload(wanted.gpu_layers)
    result = plan(
        headers,
        ctx=wanted.ctx * wanted.sequences,
        cache_type=flags.cache_type_k,
        cache_type_v=flags.cache_type_v,
        available=available,
        offload=layers,
    )
    if result.fits is not False:
        return wanted.ctx
    best = largest_ctx(
        headers,
        available=available,
        limit=wanted.ctx,
        cache_type=flags.cache_type_k,
        cache_type_v=flags.cache_type_v,
        sequences=wanted.sequences,
        offload=layers,
    )
    have = free_memory(result)
    if best is not None and not wanted.asked:
        if on_disk:
            console.notice(
                f"using --ctx {best}: the default {wanted.ctx} would need "
                f"{needed(result)} and {have}"
            )
        return best
    undone = "" if on_disk else "; nothing was downloaded"
    if best is None:
        quant = next((c.what for c in result.changes if "bits per weight" in c.what), None)
        fewer = next((c.what for c in result.changes if c.what.startswith("--gpu-layers")), None)
        raise DoesNotFitError(
            f"{name} does not fit in memory at any context: its weights alone are "
            f"{format_bytes(result.weights_bytes)} and {have}{undone}",
            hint=f"{'use ' + fewer + ', ' if fewer else ''}free memory, choose "
            f"{quant or 'a smaller model'}, or {ESCAPE} to try anyway",
        )
    fewer = next((c.what for c in result.changes if c.what.startswith("--gpu-layers")), None)
    raise DoesNotFitError(
        f"{wanted.where()} does not fit in memory: {name} would need "
        f"{needed(result)} and {have}; the largest that fits is --ctx {best}{undone}",
        hint=f"use --ctx {best}, a quantized KV cache (--cache-type-k/-v q8_0), "
        + (f"{fewer}, " if fewer else "")
        + f"or {ESCAPE}",
    )


def sequences_that_fit(invocation: Invocation, path: Path, ctx: int, most: int) -> int:
    """For `run --batch` without --parallel: the most sequences of `ctx` each, halving
    from `most`, that fit in memory beside the model; 1 where no plan can say (layers on
    RPC workers, memory unknown)."""
    if most < 2 or not applies(invocation):
        return 1
    from llmcli.memory_plan import plan
    from llmcli.resolve.resolver import file_headers
    from llmcli.system_memory import memory_for_models

    available = memory_for_models()
    if available is None:
        return 1
    headers = file_headers(path)
    flags = invocation.engine_flags
    layers = offload(invocation.gpu_layers)
    sequences = most
    while sequences > 1:
        wanted = plan(
            headers,
            ctx=ctx * sequences,
            cache_type=flags.cache_type_k,
            cache_type_v=flags.cache_type_v,
            available=available,
            offload=layers,
        )
        if wanted.fits:
            return sequences
        sequences //= 2
    return 1


def before_download(wanted: Wanted) -> Callable[[HubRef, str | None], None]:
    """A check for the resolver to make before it downloads a model: the header is read
    from the Hub with range requests and planned like a local file's. A header that does
    not parse is left to the download's own checks."""

    def check(ref: HubRef, revision: str | None) -> None:
        from llmcli import store

        try:
            remote = store.remote_headers(ref, revision=revision)
        except ModelInvalidError:
            return
        name = f"{ref.display} ({format_bytes(remote.file_bytes)})"
        layered = with_gpu_layers_that_fit(remote.headers, wanted, on_disk=False)
        largest(remote.headers, layered, name, on_disk=False)

    return check
