"""`llmcli fit`: whether a model fits in memory at a context, from its GGUF header alone,
before anything is downloaded or loaded."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from llmcli.commands import _options as opt
from llmcli.errors import DoesNotFitError, UsageError
from llmcli.humanize import format_bytes, parse_bytes
from llmcli.ui import console

EPILOG = """\
Examples:

  llmcli fit smollm2:135m

  llmcli fit bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M --ctx 32768

  llmcli fit ./model.gguf --cache-type q8_0 --json | jq .max_ctx

  llmcli fit ./model.gguf --ctx 32768 --cache-type-k q8_0 --cache-type-v q4_0

  llmcli fit ./model.gguf --gpu-memory 8GB

  llmcli fit mistral:7b && llmcli run -m mistral:7b "Hello"
"""


class CacheType(str, Enum):
    f16 = "f16"
    q8_0 = "q8_0"
    q4_0 = "q4_0"


def register(app: typer.Typer) -> None:
    app.command(
        "fit",
        help="Plan a model's memory at a context: weights, KV cache, compute buffer, "
        "against the memory available now.\n\n"
        "Read from the GGUF header alone: a model not in the cache is not downloaded, "
        "only its header is read from the Hub. The weights and KV cache are exact; the "
        "compute buffer is an estimate. Where layers go to a GPU (a GPU build, or "
        "--gpu-memory), the plan splits RAM and GPU memory as llama.cpp places the "
        "layers. Exit status 12 when it does not fit.",
        epilog=EPILOG,
    )(fit)


def fit(
    ref: opt.ModelArg = None,
    ctx: opt.CtxOpt = opt.DEFAULT_CONTEXT,
    cache_type: Annotated[
        CacheType | None,
        typer.Option(
            "--cache-type",
            help="The KV cache's type, keys and values: f16 (llama.cpp's default), or "
            "quantized q8_0 or q4_0 (about half and a quarter of the memory). "
            "--cache-type-k and --cache-type-v set one of them.",
            show_default=False,
        ),
    ] = None,
    cache_type_k: Annotated[
        CacheType | None,
        typer.Option(
            "--cache-type-k",
            help="The keys' type (as run's --cache-type-k). Default: --cache-type, else f16.",
            show_default=False,
        ),
    ] = None,
    cache_type_v: Annotated[
        CacheType | None,
        typer.Option(
            "--cache-type-v",
            help="The values' type (as run's --cache-type-v). Default: --cache-type, else f16.",
            show_default=False,
        ),
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option(
            "--memory",
            help="Plan against this much memory (e.g. 16GB, 8GiB). Default: "
            "$LLMCLI_MEMORY, else what is available on this machine now.",
            show_default=False,
        ),
    ] = None,
    gpu_layers: opt.GpuLayersOpt = None,
    gpu_memory: Annotated[
        str | None,
        typer.Option(
            "--gpu-memory",
            help="Plan for a GPU with this much free memory (e.g. 8GB), even where this "
            "build has none. Default: $LLMCLI_GPU_MEMORY, else what the GPU reports free.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the plan as one JSON object.")
    ] = False,
) -> None:
    from llmcli.commands._context_fit import offload
    from llmcli.memory_plan import plan
    from llmcli.resolve.resolver import model_headers
    from llmcli.system_memory import memory_for_models
    from llmcli.ui.fit_view import needs_and_free, render_plan

    available = memory_for_models() if memory is None else parse_bytes(memory)
    if available is None and memory is not None:
        raise UsageError(f"--memory: not a size: {memory!r} (e.g. 16GB, 8GiB)")
    gpu_bytes = None if gpu_memory is None else parse_bytes(gpu_memory)
    if gpu_memory is not None and gpu_bytes is None:
        raise UsageError(f"--gpu-memory: not a size: {gpu_memory!r} (e.g. 8GB, 24GiB)")
    found = model_headers(ref)
    both = cache_type or CacheType.f16
    result = plan(
        found.headers,
        ctx=ctx,
        cache_type=(cache_type_k or both).value,
        cache_type_v=(cache_type_v or both).value,
        available=available,
        offload=offload(gpu_layers, gpu_bytes),
    )
    if found.hub_bytes_read is not None:
        console.notice(
            f"read {format_bytes(found.hub_bytes_read)} of the header from the Hub; "
            f"the model itself ({format_bytes(found.file_bytes)}) was not downloaded"
        )
    if result.beyond_trained:
        console.notice(
            f"--ctx {ctx} is beyond the {result.trained_ctx} tokens the model was trained "
            "on: answers past that tend to degrade"
        )
    for note in result.notes:
        console.notice(f"note: {note}")
    if json_out:
        console.emit_json({"model": found.name, **result.as_dict()})
    else:
        render_plan(found.name, result)
    if result.fits is False:
        best = next((c.what for c in result.changes if c.fits), None)
        raise DoesNotFitError(
            f"{found.name} does not fit at --ctx {ctx}: {needs_and_free(result)}",
            hint=f"try {best}" if best else "free memory, or choose a smaller model",
        )
