"""`llmcli bench`: prompt-processing and generation speed, comparable to llama-bench."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.commands import _options as opt
from llmcli.commands._invocation import Invocation
from llmcli.errors import UsageError
from llmcli.resolve.with_progress import model_file
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.engine.bench import BenchResult

EPILOG = """\
Examples:

  llmcli bench -m smollm2:135m

  llmcli bench -m ./model.gguf -p 512 -n 128 -r 5 --threads 1,2,4 --json
"""


def register(app: typer.Typer) -> None:
    app.command(
        "bench",
        help="Measure prompt processing (pp) and generation (tg) speed in tokens/s.\n\n"
        "Measured like llama.cpp's llama-bench: random tokens, one warm-up run, then "
        "repetitions on an empty cache; mean ± standard deviation.",
        epilog=EPILOG,
    )(bench)


def _thread_list(value: str | None) -> list[int]:
    if value is None:
        from llmcli.tuning.threads import choose_threads

        return [choose_threads().threads]
    try:
        threads = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise UsageError(f"invalid --threads {value!r}: give counts like 2 or 1,2,4")
    return threads


def bench(
    context: typer.Context,
    model: opt.ModelOpt = None,
    n_prompt: Annotated[
        int, typer.Option("--n-prompt", "-p", min=0, help="Prompt tokens per pp test; 0: skip.")
    ] = 512,
    n_gen: Annotated[
        int,
        typer.Option(
            # -n as in `run`; --n-gen is llama-bench's name, -g this command's old one.
            "--max-tokens",
            "-n",
            "--n-gen",
            "-g",
            min=0,
            help="Tokens to generate per tg test; 0: skip.",
        ),
    ] = 128,
    reps: Annotated[int, typer.Option("--reps", "-r", min=1, help="Repetitions per test.")] = 5,
    threads: Annotated[
        str | None,
        typer.Option(
            # No -t: that is a prompt template in run and chat.
            "--threads",
            help="Thread counts to compare, e.g. 1,2,4. Default: the usable cores that other "
            "processes are not keeping busy.",
            show_default=False,
        ),
    ] = None,
    gpu_layers: opt.GpuLayersOpt = None,
    rpc: opt.RpcOpt = None,
    tensor_split: opt.TensorSplitOpt = None,
    cache_type_k: opt.CacheTypeKOpt = "f16",
    cache_type_v: opt.CacheTypeVOpt = "f16",
    lora: opt.LoraOpt = None,
    lora_scale: opt.LoraScaleOpt = 1.0,
    rope_scale: opt.RopeScaleOpt = None,
    yarn: opt.YarnOpt = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    thread_counts = _thread_list(threads)
    if n_prompt == 0 and n_gen == 0:
        raise UsageError("nothing to measure: both --n-prompt and --max-tokens are 0")
    path = model_file(model)
    load = Invocation.from_context(context).load_options(
        path, n_ctx=max(n_prompt, n_gen, 16) + 16, n_threads=max(thread_counts)
    )

    from llmcli.engine.bench import run_bench
    from llmcli.engine.model import Model

    with Model(load, notify=console.notice) as llm:
        from llmcli.engine.system_info import runs_on

        backend = runs_on(llm.gpu_layers, load.rpc)
        if not json_out:
            flags = "".join(f", {k}: {v}" for k, v in load.engine_flags().items())
            console.emit_text(f"model: {llm.name} ({path.name}), backend: {backend}{flags}\n")
            if llm.split is not None:
                console.info(llm.split.line())
            console.emit_text(
                "| threads | test   |              t/s |\n|--------:|:-------|-----------------:|"
            )

        def row(r: BenchResult) -> None:
            if not json_out:
                speed = f"{r.mean_tps:.2f} ± {r.stddev_tps:.2f}"
                console.emit_text(f"| {r.threads:>7} | {r.test:<6} | {speed:>16} |")

        results = run_bench(
            llm, n_prompt=n_prompt, n_gen=n_gen, reps=reps, threads=thread_counts, on_result=row
        )
        if json_out:
            rows = [
                {**_as_json(r, str(path), llm.gpu_layers), **load.engine_flags()} for r in results
            ]
            if llm.split is not None:
                for item in rows:
                    item["rpc"] = list(load.rpc)
                    item["split"] = llm.split.as_dict()
            console.emit_json(rows)


def _as_json(result: BenchResult, path: str, gpu_layers: int) -> dict[str, Any]:
    return {
        "model_path": path,
        "test": result.test,
        "n_prompt": result.n_prompt,
        "n_gen": result.n_gen,
        "threads": result.threads,
        "gpu_layers": gpu_layers,
        "mean_tps": round(result.mean_tps, 2),
        "stddev_tps": round(result.stddev_tps, 2),
        "samples_tps": [round(s, 2) for s in result.samples_tps],
    }
