"""`llmcli run`: one prompt in, one streamed answer out; or many prompts with --batch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmcli import terminal
from llmcli.commands import _options as opt
from llmcli.commands import run_answer
from llmcli.commands._context_fit import NoMemoryCheckOpt, model_that_fits, sequences_that_fit
from llmcli.commands._defaults import loaded_template
from llmcli.commands._invocation import Invocation
from llmcli.commands.attachments import media_prompt, needed_projector, read_attachments
from llmcli.commands.prompt_input import combine, read_stdin
from llmcli.commands.structured import output_format, schema_format
from llmcli.engine.types import START_CTX, Decoding, GenerationResult
from llmcli.errors import UsageError
from llmcli.prompting import PromptBuilder
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.remember import AnswerLog, EarlierTurns

# `run --batch` without --parallel: this many lines at once, where memory allows. Decoding
# them together is what makes a batch faster than its lines one at a time on a CPU too.
BATCH_SEQUENCES = 8

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

  llmcli run -m ./SmolVLM-256M-Instruct-Q8_0.gguf -a photo.jpg "What is in this picture?"

  llmcli run --cache-type-k q8_0 --cache-type-v q8_0 --ctx 16384 "Summarize:" < report.txt

  llmcli run -m qwen3:0.6b --tool-file weather.py --yes "Weather in Lima?"
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
    cache_type_k: opt.CacheTypeKOpt = "f16",
    cache_type_v: opt.CacheTypeVOpt = "f16",
    lora: opt.LoraOpt = None,
    lora_scale: opt.LoraScaleOpt = 1.0,
    rope_scale: opt.RopeScaleOpt = None,
    yarn: opt.YarnOpt = False,
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
            help="Keep the state of long prompts, and of the chat template's preamble, on "
            "disk, so a later prompt that starts the same way skips that part (see "
            "`llmcli cache`).",
        ),
    ] = True,
    lookup: opt.LookupOpt = True,
    parallel: Annotated[
        int | None,
        typer.Option(
            "--parallel",
            "-P",
            min=1,
            max=64,
            help="With --batch: answer this many prompts at once, decoded together "
            "(the prompt cache and lookup decoding then stay off). Default: up to "
            f"{BATCH_SEQUENCES} where their contexts fit in memory beside the model; "
            "1 answers one line at a time.",
            show_default=False,
        ),
    ] = None,
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
    attach: opt.AttachOpt = None,
    mmproj: opt.MmprojOpt = None,
    log: opt.LogOpt = True,
    continue_: Annotated[
        bool,
        typer.Option(
            "--continue",
            help="Continue the latest conversation in the answer log: the model reads its "
            "earlier turns first.",
        ),
    ] = False,
    cid: Annotated[
        str | None,
        typer.Option(
            "--cid",
            help="Continue this conversation of the answer log (its id, or the id's start; "
            "`llmcli logs` shows them).",
            show_default=False,
        ),
    ] = None,
    stats: Annotated[bool, typer.Option("--stats", help="Print speed figures on stderr.")] = False,
    no_memory_check: Annotated[bool, NoMemoryCheckOpt] = False,
    tool_file: opt.ToolFileOpt = None,
    mcp: opt.McpOpt = None,
    tool_choice: opt.ToolChoiceOpt = "auto",
    max_steps: opt.MaxStepsOpt = opt.DEFAULT_MAX_STEPS,
    yes: opt.YesOpt = False,
    tool_timeout: opt.ToolTimeoutOpt = opt.DEFAULT_TOOL_TIMEOUT,
    plain: opt.PlainOpt = False,
    verbose: opt.VerboseOpt = False,
) -> None:
    term = terminal.current()
    if probs and batch is not None:
        raise UsageError("--probs works on one prompt, not with --batch")
    if attach and (batch is not None or show_prompt):
        raise UsageError("--attach works on one answered prompt: not with --batch or --show-prompt")
    attachments = read_attachments(attach or [])
    earlier = None
    if continue_ or cid is not None:
        if batch is not None or raw:
            raise UsageError("--continue and --cid continue a chat: not with --batch or --raw")
        from llmcli.remember import earlier_turns

        earlier = earlier_turns(cid)
        system = system if system is not None else earlier.system
    fmt = output_format(json_schema, grammar, format_)
    ptemplate = loaded_template(context)
    if fmt is None and ptemplate is not None and ptemplate.schema is not None:
        fmt = schema_format(ptemplate.schema, f"prompt template {ptemplate.name!r}")
    invocation = Invocation.from_context(context, grammar=fmt.gbnf if fmt else None)
    text: str | None = None
    if batch is None:
        text = _prompt_text(prompt, invocation)
        lines: list[str] = []
    else:
        if show_prompt:
            raise UsageError("--show-prompt shows one prompt; it cannot be used with --batch")
        lines = _batch_lines(batch)
    if model is None and ptemplate is not None:
        model = ptemplate.model
    path, invocation = model_that_fits(
        context,
        invocation,
        model,
        sequences=parallel if batch is not None and parallel is not None else 1,
        check=not (show_prompt or no_memory_check),
    )
    ctx = invocation.ctx or ctx
    if parallel is None:
        parallel = 1
        if batch is not None and not (show_prompt or no_memory_check):
            parallel = sequences_that_fit(
                invocation, path, ctx, min(BATCH_SEQUENCES, sum(1 for x in lines if x.strip()))
            )
    projector = needed_projector(path, mmproj, attached=bool(attachments), name=model or path.name)
    if fmt is not None and not show_prompt:
        from llmcli.engine.grammar import check_grammar

        check_grammar(path, fmt.gbnf)
    if tool_file or mcp:
        if batch is not None or raw or probs or fmt is not None or show_prompt:
            raise UsageError(
                "tools (--tool-file, --mcp) answer one chat prompt: not with --batch, --raw, "
                "--probs, --show-prompt or a constrained format"
            )
        from llmcli.commands.run_tools import run_with_tools

        run_with_tools(
            invocation,
            path,
            text or "",
            system,
            earlier.messages if earlier else (),
            name=model or str(path),
            answer_log=_answer_log(invocation, log, None, model, path, earlier),
            json_out=json_out,
            markdown=term.stdout_rich and not plain,
            show_thinking=show_thinking,
            stats=stats,
            lookup=lookup,
        )
        return
    # With --parallel the scheduler holds the contexts; the model's own only tokenizes.
    own_ctx = 256 if batch is not None and parallel > 1 else ctx
    load = invocation.load_options(
        path,
        n_ctx=own_ctx,
        # One answer: the KV cache of the whole context is allocated only if it needs it.
        start_ctx=START_CTX if batch is None else None,
        vocab_only=show_prompt,
    )

    from llmcli.engine.model import Model

    sampling = invocation.sampling
    with Model(load, notify=console.notice) as llm:
        builder = PromptBuilder(
            llm,
            raw=raw,
            special=special,
            instruction=fmt.instruction() if fmt else None,
            thinking=invocation.thinking,
            template=ptemplate,
            variables=invocation.variables,
        )
        for note in invocation.notices(llm):
            console.notice(note)
        if show_prompt:
            history = earlier.messages if earlier else ()
            run_answer.show_prompt(llm, builder.prompt(text, system, history)[0], json_out=json_out)
            return
        answer_log = _answer_log(invocation, log, batch, model, path, earlier)
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
                log=answer_log,
            )
            _close(answer_log)
            return
        with run_answer.prompt_cache(llm, prompt_cache) as cache:
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
                    log=answer_log,
                )
                _close(answer_log)
                return
            if earlier is not None and builder.completion:
                raise UsageError("this model has no chat template: it cannot continue a chat")
            tokens, preamble = builder.prompt(
                text, system, earlier.messages if earlier else (), media=len(attachments)
            )
            media = None
            if projector is not None:
                media = media_prompt(llm, tokens, attachments, projector)
                tokens = media.tokens
            started = time.perf_counter()

            def remember(result: GenerationResult) -> None:
                answer_log.add(
                    prompt=text or "",
                    system=system,
                    result=result,
                    sampling=sampling,
                    started=started,
                    interrupted=result.finish_reason == "interrupted",
                )

            try:
                run_answer.answer_one(
                    llm,
                    tokens,
                    sampling,
                    fmt,
                    Decoding(lookup=lookup, prompt_cache=cache, preamble=preamble),
                    name=model or str(path),
                    path=path,
                    json_out=json_out,
                    markdown=term.stdout_rich and not plain and fmt is None,
                    show_thinking=show_thinking,
                    probs=probs,
                    top_logprobs=top_logprobs,
                    stats=stats,
                    remember=remember,
                    media=media,
                )
            finally:
                if media is not None:
                    media.close()
                _close(answer_log)


def _prompt_text(prompt: str | None, invocation: Invocation) -> str:
    """The prompt: the argument, stdin, or both; put into the prompt template's prompt
    here already, so that a missing input fails before the model loads."""
    stdin_text = None if terminal.current().stdin_isatty else read_stdin()
    ptemplate = invocation.prompt_template
    if ptemplate is None:
        return combine(prompt, stdin_text)
    text = "\n\n".join(p.strip("\n") for p in (prompt, stdin_text) if p and p.strip())
    ptemplate.render(text, invocation.variables)
    return text


def _answer_log(
    invocation: Invocation,
    log: bool,
    batch: str | None,
    model: str | None,
    path: Path,
    earlier: EarlierTurns | None,
) -> AnswerLog:
    from llmcli.answer_log import switch
    from llmcli.remember import AnswerLog, log_name

    return AnswerLog(
        enabled=switch.enabled(log, given="log" in invocation.given),
        command="run" if batch is None else "batch",
        model_name=log_name(model, path),
        model_path=path,
        conversation_id=earlier.conversation_id if earlier else None,
    )


def _close(answer_log: AnswerLog) -> None:
    failure = answer_log.close()
    if failure:
        console.notice(f"this answer was not logged: {failure}")


def _batch_lines(source: str) -> list[str]:
    if source == "-":
        return read_stdin().splitlines()
    from llmcli.errors import UsageError

    try:
        data = Path(source).expanduser().read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read batch file {source}: {exc.strerror}") from exc
    return data.decode("utf-8", errors="replace").splitlines()
