"""`llmcli serve`: the model over HTTP, for editors, notebooks, agents and `curl`."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmcli import config
from llmcli.commands import _options as opt
from llmcli.commands._context_fit import NoMemoryCheckOpt, model_that_fits
from llmcli.commands._invocation import Invocation
from llmcli.commands._listen import check_port, endpoint, is_loopback
from llmcli.errors import ExitCode, LlmcliError, UsageError
from llmcli.humanize import format_bytes
from llmcli.projector_files import check_projector, projector_for
from llmcli.remote_media import MAX_BYTES as MAX_MEDIA_BYTES
from llmcli.remote_media import TIMEOUT_S as MEDIA_TIMEOUT_S
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.serve.residency import Limits

ENV_API_KEY = "LLMCLI_API_KEY"
MAX_BODY_BYTES = 8 << 20
# `--max-models` unless told: ollama's default on a CPU. The memory budget is what
# usually decides; this bounds the threads and memory maps of many small models.
DEFAULT_MAX_MODELS = 3

EPILOG = """\
Examples:

  llmcli serve -m smollm2 --parallel 4

  curl -s localhost:8080/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"messages": [{"role": "user", "content": "Hi"}]}' | jq -r '.choices[0].message.content'

  # Python: openai.OpenAI(base_url="http://127.0.0.1:8080/v1", api_key="unused")

  LLMCLI_API_KEY=secret llmcli serve --host 0.0.0.0     # reachable from the network

  llmcli serve -m smollm2 --keep-alive 10m    # unloaded after 10 idle minutes
  llmcli ps                                   # what a running server has loaded
  llmcli stop smollm2                         # unload it now; the next request reloads it

  # Any model `llmcli list` shows answers when a request names it in "model"; at most
  # 2 at once, within 6 GB, the least recently used idle one unloaded first:
  llmcli serve -m smollm2 --max-models 2 --max-memory 6GB
"""


def register(app: typer.Typer) -> None:
    app.command(
        "serve",
        help="Serve models over HTTP with OpenAI's API: chat and text completions "
        "(streamed or not), embeddings, models; Anthropic's Messages; rerank for reranker "
        "models.\n\n"
        "The model given (-m) is loaded at start and answers requests that name no model; a "
        "request naming another model that `llmcli list` shows loads it, within "
        "--max-models and --max-memory. Each loaded model answers up to --parallel "
        "requests at once, decoded together in the same engine steps; different models "
        "answer at the same time. Listens on 127.0.0.1 unless told otherwise.",
        epilog=EPILOG,
    )(serve)


def serve(
    context: typer.Context,
    model: opt.ModelOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8080,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel", "-P", min=1, max=64, help="Requests answered at once (sequences)."
        ),
    ] = 4,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="Require 'Authorization: Bearer KEY' (or 'x-api-key: KEY'). "
            f"Also {ENV_API_KEY} or the config file's api_key.",
            show_default=False,
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--no-auth-on-network",
            help="Allow listening on a non-loopback address without an API key.",
        ),
    ] = False,
    allowed_hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="Without an API key, also answer requests whose Host header names this "
            "(besides IP addresses, localhost and --host; `*`: any). Repeatable; also the "
            "config file's allowed_hosts.",
            show_default=False,
        ),
    ] = None,
    cors_origins: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            help="Let web pages from this origin (e.g. http://localhost:3000; `*`: any) call "
            "the server. Repeatable; also the config file's cors_origins.",
            show_default=False,
        ),
    ] = None,
    queue: Annotated[
        int,
        typer.Option("--queue", min=0, help="Requests that may wait for a free sequence."),
    ] = 32,
    grace: Annotated[
        float,
        typer.Option("--grace", min=0, help="Seconds answers in flight get to end on Ctrl-C."),
    ] = 10.0,
    temperature: opt.TemperatureOpt = opt.DEFAULTS.temperature,
    top_p: opt.TopPOpt = opt.DEFAULTS.top_p,
    top_k: opt.TopKOpt = opt.DEFAULTS.top_k,
    min_p: opt.MinPOpt = opt.DEFAULTS.min_p,
    repeat_penalty: opt.RepeatPenaltyOpt = opt.DEFAULTS.repeat_penalty,
    seed: opt.SeedOpt = None,
    max_tokens: opt.MaxTokensOpt = None,
    ctx: Annotated[
        int,
        typer.Option("--ctx", "-c", min=64, help="Context window of each sequence, in tokens."),
    ] = opt.DEFAULT_CONTEXT,
    threads: opt.ThreadsOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    rpc: opt.RpcOpt = None,
    tensor_split: opt.TensorSplitOpt = None,
    no_memory_check: Annotated[bool, NoMemoryCheckOpt] = False,
    cache_type_k: opt.CacheTypeKOpt = "f16",
    cache_type_v: opt.CacheTypeVOpt = "f16",
    lora: opt.LoraOpt = None,
    lora_scale: opt.LoraScaleOpt = 1.0,
    rope_scale: opt.RopeScaleOpt = None,
    yarn: opt.YarnOpt = False,
    keep_alive: Annotated[
        str,
        typer.Option(
            "--keep-alive",
            help="Unload a model after it has been idle this long (30s, 5m, 1h; 0: after "
            "each request; -1: never) and load it again on the next request; each model "
            "counts its own. A request's keep_alive field changes its model's, as in ollama.",
        ),
    ] = "-1",
    max_models: Annotated[
        int,
        typer.Option(
            "--max-models",
            min=1,
            help="Models loaded at once. Loading another unloads the least recently used "
            "idle one first; a request that finds every one busy is refused (503).",
        ),
    ] = DEFAULT_MAX_MODELS,
    max_memory: Annotated[
        str | None,
        typer.Option(
            "--max-memory",
            help="Memory the loaded models may take together (e.g. 6GB), each estimated "
            "from its GGUF header before loading (weights, every sequence's KV cache, "
            "compute buffer). Default: 90% of the memory free at start ($LLMCLI_MEMORY "
            "overrides that). A model that cannot fit is refused (503, or 507 when it "
            "exceeds the whole budget); the loaded ones go on.",
            show_default=False,
        ),
    ] = None,
    log_answers: Annotated[
        bool,
        typer.Option(
            "--log",
            help="Keep the answers in the answer log (`llmcli logs`). Off by default: a "
            "server's clients are other people.",
        ),
    ] = False,
    mmproj: opt.MmprojOpt = None,
    allow_remote_media: Annotated[
        bool,
        typer.Option(
            "--allow-remote-media",
            help="Fetch image_url parts that name an http(s) URL (at most "
            f"{MAX_MEDIA_BYTES >> 20} MB, {MEDIA_TIMEOUT_S:g} s, an image or audio content "
            "type). Off by default: any client could then make the server request any "
            "address it can reach.",
        ),
    ] = False,
    verbose: opt.VerboseOpt = False,
) -> None:
    settings = config.load()
    key = api_key or os.environ.get(ENV_API_KEY) or settings.api_key
    if not is_loopback(host) and not key and not insecure:
        raise UsageError(
            f"listening on {host} lets anyone on the network use this machine: set an API "
            f"key (--api-key or {ENV_API_KEY}) or pass --no-auth-on-network"
        )
    if not is_loopback(host) and not key:
        console.notice(f"warning: {host}:{port} is open to the network without an API key")
    invocation = Invocation.from_context(context)
    from llmcli.resolve.resolver import default_ref

    check_port(host, port)
    path, invocation = model_that_fits(
        context, invocation, model, sequences=parallel, check=not no_memory_check
    )
    ctx = invocation.ctx or ctx
    projector = projector_for(path, mmproj)
    ref = served = model or default_ref()
    if Path(served).expanduser().is_file():
        served = Path(served).name  # requests name it by file name, not by full path

    from llmcli.engine.model import Model
    from llmcli.engine.scheduler import Scheduler
    from llmcli.serve.residency import Residency, served_size
    from llmcli.serve.server import serve as run_server
    from llmcli.serve.state import ServerState

    keep = _keep_alive(keep_alive)
    # Taken before the first model loads, so that its memory counts as free.
    limits = _limits(max_models, max_memory, check=not no_memory_check)

    def size_of(file: Path) -> int:
        return served_size(file, ctx=ctx, parallel=parallel)

    def load(name: str, file: Path) -> tuple[Model, Scheduler]:
        # The -m model's adapter and projector are its own; another model gets the
        # projector found beside it, if any.
        first = file == path
        mmproj_file = projector if first else projector_for(file, None)
        if mmproj_file is not None:
            check_projector(file, mmproj_file)  # before the model loads
        options = invocation.load_options(file, n_ctx=256, **({} if first else {"lora": None}))
        # The loaded model's own context only tokenizes; the scheduler has the real one.
        llm = Model(options, notify=console.notice)
        if llm.split is not None:
            console.notice(llm.split.line())
        if mmproj_file is not None:
            # Chat messages may then hold images (data URLs) or audio, per the projector.
            kinds = llm.use_projector(mmproj_file).kinds
            console.notice(f"projector {mmproj_file.name}: {kinds}")
        try:
            scheduler = Scheduler(llm, parallel=parallel, ctx_per_sequence=ctx, max_waiting=queue)
        except BaseException:
            llm.close()
            raise
        return llm, scheduler

    first_size = size_of(path)
    if limits.max_memory is not None and first_size > limits.max_memory:
        raise UsageError(
            f"--max-memory: {served} needs about {format_bytes(first_size)} loaded, more than "
            f"the budget of {format_bytes(limits.max_memory)}"
        )
    residency = Residency(load=load, size_of=size_of, limits=limits, keep_alive=keep)
    residency.start(served, path, *load(served, path))
    state = ServerState(
        residency=residency,
        default_name=served,
        default_path=path,
        default_ref=ref,
        defaults=invocation.sampling,
        api_key=key,
        max_body_bytes=MAX_BODY_BYTES,
        ctx=ctx,
        threads=threads,
        gpu_layers=gpu_layers,
        verbose=verbose,
        bound_host=host,
        allowed_hosts=(*(allowed_hosts or ()), *settings.allowed_hosts),
        cors_origins=(*(cors_origins or ()), *settings.cors_origins),
        log_answers=log_answers,
        allow_remote_media=allow_remote_media,
    )
    budget = "" if limits.max_memory is None else f" within {format_bytes(limits.max_memory)}"
    console.notice(
        f"serving {served} on http://{endpoint(host, port)}/v1 ({parallel} at once, {ctx} tokens "
        f"each{', API key required' if key else ''}); other cached models on demand, "
        f"{max_models} at most{budget}; Ctrl-C stops"
    )
    try:
        stopped_by = run_server(state, host=host, port=port, grace=grace)
    finally:
        residency.close()  # every model still loaded
        for failure in state.close_logs():
            console.notice(f"some answers were not logged: {failure}")
    if stopped_by is None:
        raise LlmcliError(f"could not serve on {host}:{port} (is the port in use?)")
    console.notice("stopped")
    if stopped_by == signal.SIGINT:
        raise typer.Exit(ExitCode.INTERRUPTED)


def _keep_alive(text: str) -> float | None:
    from llmcli.humanize import parse_keep_alive

    try:
        return parse_keep_alive(text)
    except ValueError as exc:
        raise UsageError(f"--keep-alive: {exc}") from None


def _limits(max_models: int, max_memory: str | None, *, check: bool) -> Limits:
    """The bounds on what is loaded; `check`: a load must also fit in what the machine
    has free at that moment (off with --no-memory-check)."""
    from llmcli.humanize import parse_bytes
    from llmcli.serve.residency import Limits, default_max_memory
    from llmcli.system_memory import memory_for_models

    if max_memory is None:
        budget = default_max_memory()
    else:
        budget = parse_bytes(max_memory)
        if budget is None or budget <= 0:
            raise UsageError(f"--max-memory: not a size: {max_memory!r} (e.g. 6GB, 512MB)")
    if not check:
        return Limits(max_models=max_models, max_memory=budget)
    return Limits(max_models=max_models, max_memory=budget, available=memory_for_models)
