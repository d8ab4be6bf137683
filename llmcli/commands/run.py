"""`llmcli run`: one prompt in, one streamed answer out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from llmcli import terminal
from llmcli.commands import _options as opt
from llmcli.commands._model import model_file
from llmcli.commands.prompt_input import combine, read_stdin
from llmcli.engine.types import GenerationResult, LoadOptions, Message
from llmcli.ui import console

EPILOG = """\
Examples:

  llmcli run "Why is the sky blue?"

  cat notes.md | llmcli run -s "Summarize in three bullets." > summary.txt

  git diff | llmcli run "Write a commit message for this diff:" --temperature 0

  llmcli run --json -n 64 "Name three primes" | jq -r .text
"""


def register(app: typer.Typer) -> None:
    app.command(
        "run",
        help="Answer one prompt, streaming the answer to stdout.\n\n"
        "The prompt is the argument, stdin, or both: the argument, a blank line, then stdin.",
        epilog=EPILOG,
    )(run)


def run(
    prompt: Annotated[
        str | None,
        typer.Argument(
            help="The prompt. Combined with stdin when both are given.", show_default=False
        ),
    ] = None,
    model: opt.ModelOpt = None,
    system: opt.SystemOpt = None,
    temperature: opt.TemperatureOpt = opt.DEFAULTS.temperature,
    top_p: opt.TopPOpt = opt.DEFAULTS.top_p,
    top_k: opt.TopKOpt = opt.DEFAULTS.top_k,
    min_p: opt.MinPOpt = opt.DEFAULTS.min_p,
    repeat_penalty: opt.RepeatPenaltyOpt = opt.DEFAULTS.repeat_penalty,
    seed: opt.SeedOpt = None,
    max_tokens: opt.MaxTokensOpt = None,
    stop: opt.StopOpt = None,
    ctx: opt.CtxOpt = opt.DEFAULT_CONTEXT,
    threads: opt.ThreadsOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Plain text completion: no chat template.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with text, usage and timings.")
    ] = False,
    stats: Annotated[bool, typer.Option("--stats", help="Print speed figures on stderr.")] = False,
    plain: opt.PlainOpt = False,
    verbose: opt.VerboseOpt = False,
) -> None:
    term = terminal.current()
    text = combine(prompt, None if term.stdin_isatty else read_stdin())
    sampling = opt.sampling(
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        repeat_penalty=repeat_penalty,
        seed=seed,
        max_tokens=max_tokens,
        stop=stop,
    )
    path = model_file(model)
    load = LoadOptions(
        path=path, n_ctx=ctx, n_threads=threads, n_gpu_layers=gpu_layers, verbose=verbose
    )

    from llmcli.engine.model import Model

    with Model(load) as llm:
        if raw or not llm.has_chat_template:
            if not raw:
                console.notice("this model has no chat template; running a plain text completion")
            tokens = llm.completion_tokens(f"{system}\n\n{text}" if system else text)
        else:
            messages = [Message(role="system", content=system)] if system else []
            messages.append(Message(role="user", content=text))
            tokens = llm.chat_tokens(messages)
        llm.check_fits(tokens)

        result = GenerationResult()
        try:
            if json_out:
                for _ in llm.stream(tokens, sampling, result):
                    pass
            else:
                markdown = term.stdout_rich and not plain
                with console.AnswerWriter(markdown=markdown) as writer:
                    for chunk in llm.stream(tokens, sampling, result):
                        writer.write(chunk)
        except KeyboardInterrupt:
            result.finish_reason = "interrupted"
            _report(result, model or str(path), path, json_out=json_out, stats=stats)
            raise
        _report(result, model or str(path), path, json_out=json_out, stats=stats)


def _report(
    result: GenerationResult, name: str, path: Path, *, json_out: bool, stats: bool
) -> None:
    if json_out:
        console.emit_json(_as_json(result, name, path))
    if stats:
        console.info(stats_line(result))


def _as_json(result: GenerationResult, name: str, path: Path) -> dict[str, Any]:
    return {
        "model": name,
        "model_path": str(path),
        "text": result.text,
        "finish_reason": result.finish_reason,
        "seed": result.seed,
        "usage": result.usage(),
        "timings": result.timings(),
    }


def stats_line(result: GenerationResult) -> str:
    cached = result.prompt_tokens - result.prompt_tokens_evaluated
    reuse = f", {cached} cached" if cached > 0 else ""
    return (
        f"load {result.load_s:.2f} s · first token {result.ttft_s:.3f} s · "
        f"prompt {result.prompt_tokens} tokens{reuse} at {result.prompt_tps:.1f} tok/s · "
        f"answer {result.completion_tokens} tokens at {result.generation_tps:.1f} tok/s · "
        f"{result.finish_reason}"
    )
