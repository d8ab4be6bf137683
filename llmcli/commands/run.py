"""`llmcli run`: one prompt in, one streamed answer out; or many prompts with --batch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli import terminal
from llmcli.commands import _options as opt
from llmcli.commands._result_json import result_json
from llmcli.commands.prompt_input import combine, read_stdin
from llmcli.commands.structured import OutputFormat, output_format, schema_format
from llmcli.engine.types import Decoding, GenerationResult, LoadOptions, Sampling
from llmcli.errors import OutputInvalidError, UsageError
from llmcli.local_model import model_file
from llmcli.prompting import PromptBuilder, thinking_budget_note
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.engine.model import Model
    from llmcli.engine.split import SplitReport

EPILOG = """\
Examples:

  llmcli run "Why is the sky blue?"

  cat notes.md | llmcli run -s "Summarize in three bullets." > summary.txt

  git diff | llmcli run "Write a commit message for this diff:" --temperature 0

  llmcli run --json -n 64 "Name three primes" | jq -r .text

  llmcli run --probs "Finish the proverb: a stitch in time"

  llmcli run --json-schema person.json "Invent a person" | jq .name

  llmcli run --batch reviews.txt "Sentiment (positive/negative) of:" > out.jsonl

  llmcli run -m qwen3:0.6b --no-think "Capital of Peru?"

  llmcli run -m qwen3:0.6b --json "Is 91 prime?" | jq -r .reasoning

  cat notes.md | llmcli run -t translate --var lang=French

  llmcli run --show-prompt -s "Be brief." "Hi"
"""


def register(app: typer.Typer) -> None:
    app.command(
        "run",
        help="Answer one prompt, streaming the answer to stdout.\n\n"
        "The prompt is the argument, stdin, or both: the argument, a blank line, then "
        "stdin. With --batch, every input line is a prompt (or a JSON object with "
        '"prompt" and optional "system", "id" and sampling fields), the argument is put '
        "before each, and one JSON line per input is written, in input order.\n\n"
        "A reasoning model's thinking never reaches stdout: on a terminal a "
        "'thought for N s' line shows on stderr (--show-thinking streams the thinking "
        'there), and --json and batch lines carry it as "reasoning", apart from '
        '"text". --max-tokens counts thinking tokens too.',
        epilog=EPILOG,
    )(run)


def run(
    context: typer.Context,
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
    rpc: opt.RpcOpt = None,
    tensor_split: opt.TensorSplitOpt = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Plain text completion: no chat template.")
    ] = False,
    special: Annotated[
        bool,
        typer.Option(
            "--special",
            help="Let control tokens in the prompt (e.g. <|im_end|>) act as such. "
            "By default they are plain text.",
        ),
    ] = False,
    json_schema: Annotated[
        str | None,
        typer.Option(
            "--json-schema",
            help="Make the answer JSON that matches this schema (a file or inline JSON).",
            show_default=False,
        ),
    ] = None,
    grammar: Annotated[
        Path | None,
        typer.Option(
            "--grammar", help="Make the answer follow this GBNF grammar file.", show_default=False
        ),
    ] = None,
    format_: Annotated[
        str | None,
        typer.Option("--format", help="'json': make the answer a JSON object.", show_default=False),
    ] = None,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch",
            help="Answer every line of this file ('-': stdin) as its own prompt; write JSON lines.",
            show_default=False,
        ),
    ] = None,
    prompt_cache: Annotated[
        bool,
        typer.Option(
            "--prompt-cache/--no-prompt-cache",
            help="Keep the state of long prompts on disk, so a later prompt that starts the "
            "same way skips that part (see `llmcli cache`).",
        ),
    ] = True,
    lookup: opt.LookupOpt = True,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel",
            "-P",
            min=1,
            max=64,
            help="With --batch: answer this many prompts at once, decoded together "
            "(the prompt cache and lookup decoding then stay off).",
        ),
    ] = 1,
    probs: Annotated[
        bool,
        typer.Option(
            "--probs",
            help="Show how likely each answer token was: shaded on a terminal; with --json, "
            "OpenAI-style logprobs with the top alternatives. Sampling is unchanged.",
        ),
    ] = False,
    top_logprobs: Annotated[
        int,
        typer.Option(
            "--top-logprobs",
            min=0,
            max=20,
            help="With --probs --json: how many likeliest alternatives to list per token.",
        ),
    ] = 5,
    think: opt.ThinkOpt = None,
    reasoning_effort: opt.EffortOpt = None,
    show_thinking: opt.ShowThinkingOpt = False,
    prompt_template: opt.PromptTemplateOpt = None,
    var: opt.VarOpt = None,
    template: opt.ChatTemplateOpt = None,
    show_prompt: Annotated[
        bool,
        typer.Option(
            "--show-prompt",
            help="Print the exact prompt the model would read (chat template applied) "
            "and its token count, without loading the weights.",
        ),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with text, usage and timings.")
    ] = False,
    stats: Annotated[bool, typer.Option("--stats", help="Print speed figures on stderr.")] = False,
    plain: opt.PlainOpt = False,
    verbose: opt.VerboseOpt = False,
) -> None:
    term = terminal.current()
    if probs and batch is not None:
        raise UsageError("--probs works on one prompt, not with --batch")
    fmt = output_format(json_schema, grammar, format_)
    ptemplate = opt.loaded_template(context)
    from llmcli import prompt_templates

    variables = prompt_templates.parse_vars(var)
    if ptemplate is None and variables:
        raise UsageError("--var needs a prompt template (-t NAME)")
    if ptemplate is not None:
        ptemplate.check(variables)
        if fmt is None and ptemplate.schema is not None:
            fmt = schema_format(ptemplate.schema, f"prompt template {ptemplate.name!r}")
    thinking = opt.thinking(think, reasoning_effort)
    chat_template = opt.read_chat_template(template)
    sampling = opt.sampling(params=context.params, stop=stop, grammar=fmt.gbnf if fmt else None)
    text: str | None = None
    if batch is None:
        stdin_text = None if term.stdin_isatty else read_stdin()
        if ptemplate is None:
            text = combine(prompt, stdin_text)
        else:
            text = "\n\n".join(p.strip("\n") for p in (prompt, stdin_text) if p and p.strip())
            ptemplate.render(text, variables)  # a missing input fails before loading
        lines: list[str] = []
    else:
        if show_prompt:
            raise UsageError("--show-prompt shows one prompt; it cannot be used with --batch")
        lines = _batch_lines(batch)
    if model is None and ptemplate is not None:
        model = ptemplate.model
    path = model_file(model)
    if fmt is not None and not show_prompt:
        from llmcli.engine.grammar import check_grammar

        check_grammar(path, fmt.gbnf)
    # With --parallel the scheduler holds the contexts; the model's own only tokenizes.
    own_ctx = 256 if batch is not None and parallel > 1 else ctx
    load = LoadOptions(
        path=path,
        n_ctx=own_ctx,
        n_threads=threads,
        n_gpu_layers=gpu_layers,
        verbose=verbose,
        vocab_only=show_prompt,
        chat_template=chat_template,
        **opt.placement(rpc, tensor_split),
    )

    from llmcli.engine.model import Model

    with Model(load, notify=console.notice) as llm:
        builder = PromptBuilder(
            llm,
            raw=raw,
            special=special,
            instruction=fmt.instruction() if fmt else None,
            thinking=thinking,
            template=ptemplate,
            variables=variables,
        )
        if opt.from_command_line(context, "think", "reasoning_effort"):
            from llmcli.engine.reasoning import caveats

            for note in caveats(llm.reasoning, thinking):
                console.notice(note)
        if show_prompt:
            _show_prompt(llm, builder.tokens(text, system), json_out=json_out)
            return
        if batch is not None and parallel > 1:
            from llmcli.commands.batch_run import run_batch_parallel

            run_batch_parallel(
                llm,
                builder,
                lines,
                sampling,
                fmt,
                prefix=prompt,
                system=system,
                stats=stats,
                parallel=parallel,
                ctx=ctx,
            )
            return
        with _prompt_cache(llm, prompt_cache) as cache:
            if batch is not None:
                from llmcli.commands.batch_run import run_batch

                run_batch(
                    llm,
                    builder,
                    lines,
                    sampling,
                    fmt,
                    prefix=prompt,
                    system=system,
                    stats=stats,
                    decoding=Decoding(lookup=lookup, prompt_cache=cache),
                )
                return
            tokens = builder.tokens(text, system)
            llm.check_fits(tokens)
            name = model or str(path)
            result = GenerationResult()
            try:
                _answer(
                    llm,
                    tokens,
                    sampling,
                    result,
                    Decoding(lookup=lookup, prompt_cache=cache),
                    json_out=json_out,
                    markdown=term.stdout_rich and not plain and fmt is None,
                    show_thinking=show_thinking,
                    logprobs=top_logprobs if probs else None,
                )
            except KeyboardInterrupt:
                result.finish_reason = "interrupted"
                _report(
                    result, name, path, json_out=json_out, stats=stats, probs=probs, split=llm.split
                )
                raise
            _report(
                result, name, path, json_out=json_out, stats=stats, probs=probs, split=llm.split
            )
            budget_note = thinking_budget_note(result, sampling.max_tokens)
            if budget_note:
                console.notice(budget_note)
            _check_format(fmt, result, sampling.max_tokens)


def _show_prompt(llm: Model, tokens: list[int], *, json_out: bool) -> None:
    text = llm.prompt_text(tokens)
    if json_out:
        console.emit_json({"prompt": text, "token_count": len(tokens), "tokens": tokens})
        return
    # Exactly the prompt on stdout; a newline is added only for a terminal's sake.
    console.emit_raw(text + ("\n" if terminal.current().stdout_isatty else ""))
    console.info(f"{len(tokens)} tokens")


def _batch_lines(source: str) -> list[str]:
    if source == "-":
        return read_stdin().splitlines()
    from llmcli.errors import UsageError

    try:
        data = Path(source).expanduser().read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read batch file {source}: {exc.strerror}") from exc
    return data.decode("utf-8", errors="replace").splitlines()


def _answer(
    llm: Model,
    tokens: list[int],
    sampling: Sampling,
    result: GenerationResult,
    decoding: Decoding,
    *,
    json_out: bool,
    markdown: bool,
    show_thinking: bool,
    logprobs: int | None = None,
) -> None:
    parts = llm.stream_parts(tokens, sampling, result, decoding, logprobs=logprobs)
    if json_out:
        view = console.ThinkingView(show=show_thinking)
        for kind, text in parts:
            if kind == "thinking":
                view.write(text)
            else:
                view.done()
        view.done()
        return
    if logprobs is not None and terminal.current().stdout_rich:
        from llmcli.ui import probs_view

        with probs_view.ProbsWriter(result.logprobs) as shaded:
            for kind, text in parts:
                if kind == "answer":
                    shaded.write(text)
        probs_view.print_legend()
        return
    with console.ReplyWriter(markdown=markdown, show_thinking=show_thinking) as writer:
        for kind, text in parts:
            writer.write(kind, text)


@contextmanager
def _prompt_cache(llm: Model, enabled: bool) -> Iterator[Path | None]:
    """The prompt cache's folder, or None when it is off."""
    if not enabled:
        yield None
        return
    from llmcli.prompt_cache_files import prompt_cache_dir

    try:
        yield prompt_cache_dir()
    finally:
        llm.finish_saving()  # the state is being written in the background


def _check_format(
    fmt: OutputFormat | None, result: GenerationResult, max_tokens: int | None
) -> None:
    if fmt is None:
        return
    cut = result.finish_reason == "length"
    problem = fmt.problem_with(result.text, cut_off_at=result.completion_tokens if cut else None)
    if problem:
        hint = None
        if cut:  # by -n, else by a full context
            by_limit = max_tokens is not None and result.completion_tokens >= max_tokens
            hint = "raise --max-tokens" if by_limit else "raise --ctx"
        raise OutputInvalidError(problem, hint=hint)


def _report(
    result: GenerationResult,
    name: str,
    path: Path,
    *,
    json_out: bool,
    stats: bool,
    probs: bool = False,
    split: SplitReport | None = None,
) -> None:
    if json_out:
        data = as_json(result, name, path)
        if probs:
            from llmcli.engine.logprobs import content_json

            data["logprobs"] = content_json(result.logprobs)
        if split is not None:
            data["split"] = split.as_dict()
        console.emit_json(data)
    if stats:
        if split is not None:
            console.info(split.line())
        console.info(stats_line(result))


def as_json(result: GenerationResult, name: str, path: Path) -> dict[str, Any]:
    return {"model": name, "model_path": str(path), **result_json(result)}


def stats_line(result: GenerationResult) -> str:
    cached = result.prompt_tokens - result.prompt_tokens_evaluated
    reuse = f", {cached} cached" if cached > 0 else ""
    if result.prompt_cache_tokens:
        reuse += f" ({result.prompt_cache_tokens} from the prompt cache)"
    lookup = (
        f" · lookup kept {result.accepted_tokens} of {result.draft_tokens} drafted"
        if result.draft_tokens
        else ""
    )
    thought = f" ({result.reasoning_tokens} thinking)" if result.reasoning_tokens else ""
    return (
        f"load {result.load_s:.2f} s · first token {result.ttft_s:.3f} s · "
        f"prompt {result.prompt_tokens} tokens{reuse} at {result.prompt_tps:.1f} tok/s · "
        f"answer {result.completion_tokens} tokens{thought} at {result.generation_tps:.1f} tok/s"
        f"{lookup} · {result.finish_reason}"
    )
