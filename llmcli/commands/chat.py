"""`llmcli chat`: the command's options, turned into a conversation and a session.

Thin on purpose: the chat itself (session, slash commands, trimming, files, the loop)
lives in the `llmcli.chat` package, line editing in `llmcli.ui.line_input`, the engine
in `llmcli.engine.model`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmcli import terminal
from llmcli.commands import _options as opt
from llmcli.commands._context_fit import NoMemoryCheckOpt, model_that_fits
from llmcli.commands._invocation import Invocation
from llmcli.config import options_table
from llmcli.engine.types import START_CTX
from llmcli.errors import LlmcliError, UsageError
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.chat.conversation import Conversation
    from llmcli.remember import AnswerLog, EarlierTurns

# One paragraph per line: the help formatter wraps paragraphs to the terminal itself.
HELP = (
    "Chat with a model in the terminal, keeping it loaded between turns.\n\n"
    'Type a message and press Enter. Multi-line: paste it, wrap it in """ ... """, or press '
    "Alt-Enter (Esc Enter) for a new line. Ctrl-C stops an answer (the part shown is kept) "
    "or clears the line; Ctrl-D or /exit leaves. /help lists the commands: /set, /system, "
    "/retry, /save, /load, /model, /show, /stats, /tools, /clear.\n\n"
    "The conversation is saved after every turn; --resume continues the last one.\n\n"
    "A reasoning model's thinking shows as one 'thought for N s' line on stderr "
    "(--show-thinking streams it there) and is not kept in the conversation; /think "
    "turns it on or off.\n\n"
    "With -t, the prompt template's system prompt and settings apply and each message is "
    "put into its prompt.\n\n"
    "When stdin or stdout is not a terminal there is no prompt: each line of stdin is one "
    'message (""" blocks span lines, /commands work), answers are printed as plain text, '
    "each followed by a blank line, and the chat ends at the end of input."
)

EPILOG = """\
Examples:

  llmcli chat

  llmcli chat -m qwen2.5:0.5b -s "Answer in one sentence." --temperature 0.2

  llmcli chat --resume

  llmcli chat --load trip-planning.json

  printf 'Name a prime.\\nAnd another?\\n' | llmcli chat --temperature 0

  llmcli chat -m qwen3:0.6b --no-think

  llmcli chat -t translate --var lang=German

  llmcli chat -m qwen3:0.6b --tool-file tools.py --mcp "uvx mcp-server-time"
"""


def register(app: typer.Typer) -> None:
    app.command("chat", help=HELP, epilog=EPILOG)(chat)


def chat(
    context: typer.Context,
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
    no_memory_check: Annotated[bool, NoMemoryCheckOpt] = False,
    cache_type_k: opt.CacheTypeKOpt = "f16",
    cache_type_v: opt.CacheTypeVOpt = "f16",
    lora: opt.LoraOpt = None,
    lora_scale: opt.LoraScaleOpt = 1.0,
    rope_scale: opt.RopeScaleOpt = None,
    yarn: opt.YarnOpt = False,
    plain: opt.PlainOpt = False,
    lookup: opt.LookupOpt = True,
    think: opt.ThinkOpt = None,
    reasoning_effort: opt.EffortOpt = None,
    show_thinking: opt.ShowThinkingOpt = False,
    prompt_template: opt.PromptTemplateOpt = None,
    var: opt.VarOpt = None,
    template: opt.ChatTemplateOpt = None,
    load: Annotated[
        Path | None,
        typer.Option(
            "--load", help="Continue a conversation saved with /save.", show_default=False
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the last conversation.")
    ] = False,
    continue_: Annotated[
        bool,
        typer.Option(
            "--continue",
            help="Continue the latest conversation of the answer log (`run` answers too).",
        ),
    ] = False,
    cid: Annotated[
        str | None,
        typer.Option(
            "--cid",
            help="Continue this conversation of the answer log (its id or the id's start).",
            show_default=False,
        ),
    ] = None,
    log: opt.LogOpt = True,
    mmproj: opt.MmprojOpt = None,
    tool_file: opt.ToolFileOpt = None,
    mcp: opt.McpOpt = None,
    tool_choice: opt.ToolChoiceOpt = "auto",
    max_steps: opt.MaxStepsOpt = opt.DEFAULT_MAX_STEPS,
    yes: opt.YesOpt = False,
    tool_timeout: opt.ToolTimeoutOpt = opt.DEFAULT_TOOL_TIMEOUT,
    verbose: opt.VerboseOpt = False,
) -> None:
    from_log = continue_ or cid is not None
    if sum((load is not None, resume, from_log)) > 1:
        raise UsageError("--load, --resume and --continue/--cid cannot be used together")
    invocation = Invocation.from_context(context)
    ptemplate, variables = invocation.prompt_template, invocation.variables
    from llmcli.chat import chat_file, repl
    from llmcli.chat.session import ChatSession, model_label, open_model

    source = chat_file.last_chat_path() if resume else load
    conv = _starting_conversation(invocation, source, resume=resume)
    earlier = None
    if from_log:
        from llmcli.remember import earlier_turns

        earlier = earlier_turns(cid)
        conv.system, conv.turns = earlier.system, list(earlier.messages)
    if system is not None:
        conv.system = system or None
    elif ptemplate is not None and ptemplate.system:
        conv.system = ptemplate.render("x" if ptemplate.takes_input else None, variables)[0]
    conv.thinking = invocation.thinking
    if model is None and ptemplate is not None and ptemplate.model:
        model = ptemplate.model
    ref = model if model is not None else conv.model
    path, invocation = model_that_fits(context, invocation, ref, check=not no_memory_check)
    conv.model = model_label(ref, path)
    from llmcli.projector_files import check_projector, projector_for

    projector = projector_for(path, mmproj)
    if mmproj is not None and projector is not None:
        # One found beside the model is only loaded, and checked, once a file is attached.
        check_projector(path, projector)

    term = terminal.current()
    load_options = invocation.load_options(path, start_ctx=START_CTX)
    # MCP servers start before the model loads: one that cannot start fails fast. The
    # session ends them when the chat ends.
    box = invocation.tools.open()
    try:
        llm = open_model(load_options)
    except BaseException:
        if box is not None:
            box.close()
        raise
    for note in invocation.notices(llm):
        console.notice(note)
    session = ChatSession(
        conv,
        llm,
        load_options,
        markdown=term.stdout_rich and not plain,
        interactive=term.stdin_isatty and term.stdout_isatty,
        autosave=chat_file.last_chat_path(),
        lookup=lookup,
        show_thinking=show_thinking,
        wrap=(lambda text: ptemplate.render(text, variables)[1]) if ptemplate else None,
        answer_log=_answer_log(invocation, log, ref, path, earlier),
        projector=projector,
        tools=box,
    )
    if earlier is not None:
        console.notice(
            f"continuing conversation {earlier.conversation_id} "
            f"({len(earlier.messages) // 2} earlier turns)"
        )
    repl.run(session, resumed_from=source)


def _answer_log(
    invocation: Invocation,
    log: bool,
    ref: str | None,
    path: Path,
    earlier: EarlierTurns | None,
) -> AnswerLog:
    from llmcli.answer_log import switch
    from llmcli.remember import AnswerLog, log_name

    return AnswerLog(
        enabled=switch.enabled(log, given="log" in invocation.given),
        command="chat",
        model_name=log_name(ref, path),
        model_path=path,
        conversation_id=earlier.conversation_id if earlier else None,
    )


def _starting_conversation(
    invocation: Invocation, source: Path | None, *, resume: bool
) -> Conversation:
    """A new conversation with every sampling option (config defaults included), or a
    saved one that keeps its own settings except those typed on this command line."""
    from llmcli.chat import chat_file
    from llmcli.chat.conversation import Conversation

    if source is None:
        conv = Conversation()
    elif resume and not source.exists():
        raise LlmcliError(
            "there is no previous chat to resume", hint="start one with 'llmcli chat'"
        )
    else:
        conv = chat_file.load(source)
    chosen = [
        name
        for name in (*(o.name for o in options_table.SAMPLING), "stop")
        if source is None or name in invocation.given
    ]
    conv.sampling = dataclasses.replace(
        conv.sampling, **{name: getattr(invocation.sampling, name) for name in chosen}
    )
    return conv
