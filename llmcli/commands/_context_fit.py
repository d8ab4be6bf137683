"""A context that fits in memory, decided from the GGUF header before anything loads (or
downloads): a default context is shrunk to what fits, and said so; a context the user
asked for (command line, config file, prompt template) that would not fit is refused
with the largest that does. Never an out-of-memory kill halfway through loading.

The plan is `memory_plan`'s, against $LLMCLI_MEMORY or the memory available now. It is
about this machine's RAM: with layers offloaded to a GPU or to RPC workers it says
nothing useful, so it is not made then.
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

    @classmethod
    def of(cls, context: typer.Context, invocation: Invocation, sequences: int = 1) -> Wanted:
        source = context.get_parameter_source("ctx")
        ctx = invocation.ctx or 0
        return cls(
            ctx, source is not None and source.name != "DEFAULT", invocation.engine_flags, sequences
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
    """Whether a RAM plan means anything: not with layers offloaded to a GPU or workers."""
    if invocation.rpc or (invocation.rpc is None and _config_rpc()):
        return False
    if invocation.gpu_layers == 0:
        return True
    from llmcli.engine.loading import gpu_offload_supported

    return not gpu_offload_supported()


def _config_rpc() -> bool:
    from llmcli import config

    return bool(config.load().rpc)


def fitted(invocation: Invocation, wanted: Wanted, path: Path, name: str) -> Invocation:
    """`invocation` with a context that fits; DoesNotFitError when none the user would
    accept does."""
    from llmcli.resolve.resolver import file_headers

    ctx = largest(file_headers(path), wanted, name, on_disk=True)
    return invocation if ctx == wanted.ctx else dataclasses.replace(invocation, ctx=ctx)


def largest(headers: Sequence[Header], wanted: Wanted, name: str, *, on_disk: bool) -> int:
    """The context to use: `wanted.ctx` when it fits or memory is unknown, else the
    largest smaller one that fits when the user did not ask for this one (said on
    stderr once the model is `on_disk`). Raises DoesNotFitError otherwise, naming the
    largest that fits and what to change."""
    from llmcli.memory_plan import largest_ctx, plan
    from llmcli.system_memory import memory_for_models

    available = memory_for_models()
    if available is None:
        return wanted.ctx
    flags = wanted.flags
    result = plan(
        headers,
        ctx=wanted.ctx * wanted.sequences,
        cache_type=flags.cache_type_k,
        cache_type_v=flags.cache_type_v,
        available=available,
    )
    if result.fits:
        return wanted.ctx
    best = largest_ctx(
        headers,
        available=available,
        limit=wanted.ctx,
        cache_type=flags.cache_type_k,
        cache_type_v=flags.cache_type_v,
        sequences=wanted.sequences,
    )
    have = f"{format_bytes(available)} is available"
    if best is not None and not wanted.asked:
        if on_disk:
            console.notice(
                f"using --ctx {best}: the default {wanted.ctx} would need "
                f"{format_bytes(result.total_bytes)} and {have}"
            )
        return best
    undone = "" if on_disk else "; nothing was downloaded"
    if best is None:
        quant = next((c.what for c in result.changes if "bits per weight" in c.what), None)
        raise DoesNotFitError(
            f"{name} does not fit in memory at any context: its weights alone are "
            f"{format_bytes(result.weights_bytes)} and {have}{undone}",
            hint=f"free memory, choose {quant or 'a smaller model'}, or {ESCAPE} to try anyway",
        )
    raise DoesNotFitError(
        f"{wanted.where()} does not fit in memory: {name} would need "
        f"{format_bytes(result.total_bytes)} and {have}; the largest that fits is "
        f"--ctx {best}{undone}",
        hint=f"use --ctx {best}, a quantized KV cache (--cache-type-k/-v q8_0), or {ESCAPE}",
    )


def sequences_that_fit(invocation: Invocation, path: Path, ctx: int, most: int) -> int:
    """For `run --batch` without --parallel: the most sequences of `ctx` each, halving
    from `most`, that fit in memory beside the model; 1 where no plan can say (layers on
    a GPU or RPC workers, memory unknown)."""
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
    sequences = most
    while sequences > 1:
        wanted = plan(
            headers,
            ctx=ctx * sequences,
            cache_type=flags.cache_type_k,
            cache_type_v=flags.cache_type_v,
            available=available,
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
        largest(remote.headers, wanted, name, on_disk=False)

    return check
