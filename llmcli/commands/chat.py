"""`llmcli chat`: a conversation at the terminal, with one model kept loaded across turns.

Thin on purpose: the conversation itself (settings, commands, trimming, files) lives in
`llmcli.conversation`, line editing in `llmcli.ui.line_input`, the engine in
`llmcli.engine.model`. Keeping the same Model for every turn is what makes turns fast:
llama-cpp-python reuses the KV cache for the prompt prefix it has already seen.
"""

from __future__ import annotations

import dataclasses
import io
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from llmcli import conversation, options_table, terminal
from llmcli.commands import _options as opt
from llmcli.commands._model import model_file
from llmcli.commands._prompting import thinking_budget_note
from llmcli.conversation import Conversation, MessageTooLong, Outcome
from llmcli.engine.reasoning import Thinking
from llmcli.engine.types import Decoding, GenerationResult, LoadOptions, Message
from llmcli.errors import LlmcliError, UsageError
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.engine.model import Model

# One paragraph per line: the help formatter wraps paragraphs to the terminal itself.
HELP = (
    "Chat with a model in the terminal, keeping it loaded between turns.\n\n"
    'Type a message and press Enter. Multi-line: paste it, wrap it in """ ... """, or press '
    "Alt-Enter (Esc Enter) for a new line. Ctrl-C stops an answer (the part shown is kept) "
    "or clears the line; Ctrl-D or /exit leaves. /help lists the commands: /set, /system, "
    "/retry, /save, /load, /model, /show, /stats, /clear.\n\n"
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
    verbose: opt.VerboseOpt = False,
) -> None:
    if load is not None and resume:
        raise UsageError("--load and --resume cannot be used together")
    from llmcli import prompt_templates

    ptemplate = opt.loaded_template(context)
    variables = prompt_templates.parse_vars(var)
    if ptemplate is None and variables:
        raise UsageError("--var needs a prompt template (-t NAME)")
    if ptemplate is not None:
        ptemplate.check(variables)
    thinking = opt.thinking(think, reasoning_effort)
    chat_template = opt.read_chat_template(template)
    source = conversation.last_chat_path() if resume else load
    if source is not None:
        if resume and not source.exists():
            raise LlmcliError(
                "there is no previous chat to resume", hint="start one with 'llmcli chat'"
            )
        conv = conversation.load(source)
    else:
        conv = Conversation()

    sampling = opt.sampling(params=context.params, stop=stop)
    # A new chat takes every option (config defaults included); a loaded one keeps its
    # own settings except those typed on this command line.
    chosen = [
        name
        for name in (*(o.name for o in options_table.SAMPLING), "stop")
        if source is None or opt.from_command_line(context, name)
    ]
    conv.sampling = dataclasses.replace(
        conv.sampling, **{name: getattr(sampling, name) for name in chosen}
    )
    if system is not None:
        conv.system = system or None
    elif ptemplate is not None and ptemplate.system:
        conv.system = ptemplate.render("x" if ptemplate.takes_input else None, variables)[0]
    conv.thinking = thinking
    if model is None and ptemplate is not None and ptemplate.model:
        model = ptemplate.model
    ref = model if model is not None else conv.model
    path = model_file(ref)
    conv.model = model_label(ref, path)

    term = terminal.current()
    interactive = term.stdin_isatty and term.stdout_isatty
    load_options = LoadOptions(
        path=path,
        n_ctx=ctx,
        n_threads=threads,
        n_gpu_layers=gpu_layers,
        verbose=verbose,
        chat_template=chat_template,
        **opt.placement(rpc, tensor_split),
    )
    llm = open_model(load_options)
    if opt.from_command_line(context, "think", "reasoning_effort"):
        from llmcli.engine.reasoning import caveats

        for note in caveats(llm.reasoning, thinking):
            console.notice(note)
    session = ChatSession(
        conv,
        llm,
        load_options,
        markdown=term.stdout_rich and not plain,
        interactive=interactive,
        autosave=conversation.last_chat_path(),
        lookup=lookup,
        show_thinking=show_thinking,
        wrap=(lambda text: ptemplate.render(text, variables)[1]) if ptemplate else None,
    )
    try:
        if interactive:
            console.notice(
                f"chatting with {llm.name} · context {llm.n_ctx} tokens · "
                "/help for commands, Ctrl-D to quit"
            )
        if source is not None:
            session.recap(source)
        session.run(_terminal_inputs() if interactive else _piped_inputs(_stdin_text()))
    finally:
        session.close()


def model_label(ref: str | None, path: Path) -> str:
    """What a saved conversation records as its model: the reference as typed, but a
    local file as an absolute path so that the file still works from another directory."""
    if ref is None:
        from llmcli.models import default_ref

        return default_ref()
    if Path(ref).expanduser().is_file():
        return str(Path(ref).expanduser().resolve())
    return ref


def open_model(load: LoadOptions) -> Model:
    from llmcli.engine.model import Model

    llm = Model(load, notify=console.notice)
    if not llm.has_chat_template:
        llm.close()
        raise LlmcliError(
            f"{load.path.name} has no chat template, so it cannot chat",
            hint="use 'llmcli run --raw' for plain text completion",
        )
    return llm


# -- where messages come from ------------------------------------------------------------


def _terminal_inputs() -> Iterator[str]:
    from llmcli.ui.line_input import LineReader

    reader = LineReader(
        history_file=conversation.history_path(),
        words=conversation.completions(),
        block_is_open=conversation.block_is_open,
    )
    while True:
        try:
            text = reader.read()
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt clears the line, like a shell
        except EOFError:
            return
        yield conversation.unwrap_block(text)


def _stdin_text() -> TextIO:
    # Invalid UTF-8 becomes U+FFFD instead of ending the chat with a decode error.
    return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")


def _piped_inputs(stream: TextIO) -> Iterator[str]:
    blocks = conversation.BlockReader()
    for line in iter(stream.readline, ""):
        message = blocks.feed(line)
        if message is not None:
            yield message
    rest = blocks.finish()
    if rest is not None:
        yield rest


# -- Ctrl-C during an answer -----------------------------------------------------------------


class StopOnCtrlC:
    """While an answer streams, Ctrl-C asks it to stop after the current piece, so what
    is on screen and what is kept in the conversation are the same text.

    Before the first piece (the prompt is being evaluated, which can take a while) and on
    a second press, Ctrl-C interrupts at once; the engine stays usable either way.
    """

    def __init__(self) -> None:
        self.streaming = False  # the first piece has arrived
        self.requested = False  # Ctrl-C was pressed once while streaming
        self.done = False  # the answer is over
        self._previous: Any = None

    def __enter__(self) -> StopOnCtrlC:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.done:
            return  # a late press must not break the answer's final redraw
        if self.streaming and not self.requested:
            self.requested = True
            return
        raise KeyboardInterrupt


# -- the session -------------------------------------------------------------------------------


_FINISH = {
    "stop": "finished",
    "length": "cut short by the token limit",
    "interrupted": "interrupted with Ctrl-C",
}


class ChatSession:
    """One chat: a conversation, the loaded model, and what the last answer measured."""

    def __init__(
        self,
        conv: Conversation,
        llm: Model,
        load: LoadOptions,
        *,
        markdown: bool = False,
        interactive: bool = False,
        out: TextIO | None = None,
        autosave: Path | None = None,
        lookup: bool = True,
        show_thinking: bool = False,
        wrap: Callable[[str], str] | None = None,
    ) -> None:
        self.conv = conv
        self.show_thinking = show_thinking
        # A prompt template puts each message into its prompt.
        self.wrap = wrap
        self.decoding = Decoding(lookup=lookup)
        self.llm = llm
        self.load = load
        self.markdown = markdown
        self.interactive = interactive
        self.out = out
        self.autosave_path = autosave
        self.last: GenerationResult | None = None

    def close(self) -> None:
        self.llm.close()

    def run(self, inputs: Iterator[str]) -> None:
        for text in inputs:
            if not self.handle(text):
                return

    def handle(self, text: str) -> bool:
        """Act on one input: a message or a slash command. False: the user is leaving."""
        if not text.strip():
            return True
        try:
            outcome = conversation.dispatch(self.conv, text)
            if outcome is None:
                self.conv.ask(self.wrap(text) if self.wrap else text)
                self.reply()
            elif not self._command(outcome):
                return False
        except LlmcliError as exc:
            self.conv.drop_unanswered()  # a message the model could not take is not kept
            console.error(str(exc))
        except KeyboardInterrupt:
            if not self.interactive:
                raise
            # Ctrl-C outside an answer (a slow /save, a long prompt being prepared):
            # back to the prompt, like everywhere else in the chat.
            self.conv.drop_unanswered()
            console.notice("interrupted")
        finally:
            self._autosave()
        return True

    # -- answers ---------------------------------------------------------------------------

    def reply(self) -> GenerationResult | None:
        """Answer the last user message, streaming it; the answer joins the conversation
        exactly as streamed, including a part cut short by Ctrl-C."""
        llm = self.llm
        try:
            fit = conversation.fit_context(self.conv, self._render, llm.n_ctx)
        except MessageTooLong as exc:
            self.conv.drop_unanswered()
            console.error(str(exc))
            return None
        if fit.dropped_messages:
            console.notice(
                f"the context is full: dropped the {fit.dropped_messages} oldest messages "
                "(the system prompt is kept)"
            )
        result = GenerationResult()
        # Piped input: Ctrl-C ends the program, as it would any other pipeline.
        stopper = StopOnCtrlC() if self.interactive else None
        try:
            with stopper if stopper is not None else nullcontext():
                self._stream(fit.tokens, result, stopper)
        except KeyboardInterrupt:
            if stopper is None:
                raise
            result.finish_reason = "interrupted"
        self.last = result
        self._keep(result)
        return result

    def _render(self, messages: Sequence[Message]) -> list[int]:
        return self.llm.chat_tokens(messages, thinking=self.conv.thinking)

    def _stream(
        self, tokens: list[int], result: GenerationResult, stopper: StopOnCtrlC | None
    ) -> None:
        with console.ReplyWriter(
            markdown=self.markdown, show_thinking=self.show_thinking, out=self.out
        ) as writer:
            chunks = self.llm.stream_parts(tokens, self.conv.sampling, result, self.decoding)
            try:
                for kind, chunk in chunks:
                    if stopper is not None:
                        stopper.streaming = True
                    writer.write(kind, chunk)
                    if stopper is not None and stopper.requested:
                        result.finish_reason = "interrupted"
                        break
            finally:
                if stopper is not None:
                    stopper.done = True
                # Close now, not at garbage collection: the engine's generator must be
                # finished before the next turn uses the same context.
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()

    def _keep(self, result: GenerationResult) -> None:
        """The answer joins the conversation, its thinking does not: templates that say
        how to show earlier thinking drop it, and it would fill the context."""
        interrupted = result.finish_reason == "interrupted"
        if interrupted and not result.text:
            self.conv.drop_unanswered()
            console.notice("stopped before the answer began; the message was not kept")
            return
        self.conv.answer(result.text)
        self._write("\n")  # a blank line between an answer and what follows
        if interrupted:
            console.notice("stopped; the partial answer is kept")
        elif result.reasoning_tokens and result.finish_reason == "length":
            console.notice(thinking_budget_note(result, self.conv.sampling.max_tokens) or "")
        elif not result.text:
            console.notice("the model gave an empty answer")
        elif result.finish_reason == "length":
            limit = self.conv.sampling.max_tokens
            why = f"max_tokens ({limit})" if limit == result.completion_tokens else "the context"
            console.notice(f"the answer was cut short by {why}")

    def _write(self, text: str) -> None:
        out = self.out or sys.stdout
        try:
            out.write(text)
            out.flush()
        except BrokenPipeError as exc:
            from llmcli.errors import OutputClosed

            raise OutputClosed from exc

    # -- commands ----------------------------------------------------------------------------

    def _command(self, outcome: Outcome) -> bool:
        if outcome.error:
            console.error(outcome.error)
        if outcome.info:
            console.info(outcome.info)
        action = outcome.action
        if action == "exit":
            return False
        if action == "retry":
            if self.conv.prepare_retry():
                self.reply()
            else:
                console.error("nothing to retry yet")
        elif action == "show":
            console.info("\n".join(self.show_lines()))
        elif action == "stats":
            console.info(self.stats_text())
        elif action == "save":
            self.save(outcome.argument)
        elif action == "load":
            self.load_file(Path(outcome.argument).expanduser())
        elif action == "model":
            self.switch_model(outcome.argument)
        return True

    def stats_text(self) -> str:
        r = self.last
        if r is None:
            return "no answer yet"
        cached = r.prompt_tokens - r.prompt_tokens_evaluated
        return (
            f"answer {r.completion_tokens} tokens at {r.generation_tps:.1f} tok/s · "
            f"first token after {r.ttft_s:.3f} s · "
            f"prompt {r.prompt_tokens} tokens ({cached} reused from the cache, "
            f"{r.prompt_tokens_evaluated} evaluated at {r.prompt_tps:.1f} tok/s) · "
            f"context {r.prompt_tokens + r.completion_tokens} of {self.llm.n_ctx} tokens used · "
            f"{_FINISH[r.finish_reason]}"
        )

    def show_lines(self) -> list[str]:
        """Current settings first, then the model as loaded, then its card."""
        llm, conv = self.llm, self.conv
        gpu = "all" if llm.gpu_layers < 0 else str(llm.gpu_layers)
        rows = [
            ("model", conv.model or llm.name),
            ("system", conv.system or "(none: the model's default)"),
            ("settings", conversation.format_settings(conv.sampling)),
            ("thinking", _thinking_row(llm, conv.thinking)),
            ("context", f"{llm.n_ctx} tokens · {len(conv.turns)} messages in the conversation"),
            ("threads", f"{llm.threads} · GPU layers {gpu} · loaded in {llm.load_s:.2f} s"),
            *model_card_rows(llm),
        ]
        width = max(len(key) for key, _ in rows)
        return [f"{key.ljust(width)}  {value}" for key, value in rows]

    def save(self, argument: str) -> None:
        path = Path(argument).expanduser() if argument else default_save_path()
        if path.exists() and not path.is_dir():
            try:
                conversation.load(path)
            except conversation.ConversationFileError:
                raise conversation.ConversationFileError(
                    f"{path} exists and is not an llmcli chat file; not overwriting it"
                ) from None
        if path.is_dir():
            path = path / default_save_path().name
        conversation.save(self.conv, path)
        console.info(f"saved {len(self.conv.messages())} messages to {path}")

    def load_file(self, path: Path) -> None:
        loaded = conversation.load(path)  # raises before anything changes
        current = self.conv.model
        self.conv.system = loaded.system
        self.conv.turns = loaded.turns
        self.conv.sampling = loaded.sampling
        self.conv.dirty = True
        self.recap(path)
        if loaded.model and loaded.model != current:
            console.notice(
                f"it was saved with {loaded.model}; continuing with {current} "
                f"(/model {loaded.model} switches)"
            )

    def recap(self, path: Path) -> None:
        turns = self.conv.turns
        console.notice(f"continuing {len(turns)} messages from {path}")
        if turns and self.interactive:
            last = turns[-1]
            text = " ".join(last["content"].split())
            console.info(f"  last, {last['role']}: {text[:160]}{'…' if len(text) > 160 else ''}")

    def switch_model(self, ref: str) -> None:
        path = model_file(ref)  # resolving (or pulling) may fail: nothing changed yet
        new_load = dataclasses.replace(self.load, path=path)
        # Free the old model first: two large models at once may not fit in memory.
        self.llm.close()
        try:
            self.llm = open_model(new_load)
        except (LlmcliError, KeyboardInterrupt) as exc:
            self.llm = open_model(self.load)
            if isinstance(exc, KeyboardInterrupt):
                console.notice(f"interrupted; still chatting with {self.llm.name}")
                return
            raise
        self.load = new_load
        self.conv.model = model_label(ref, path)
        self.conv.dirty = True
        self.last = None
        console.notice(f"now chatting with {self.llm.name} · context {self.llm.n_ctx} tokens")

    def _autosave(self) -> None:
        if self.autosave_path is None or not self.conv.dirty:
            return
        try:
            conversation.save(self.conv, self.autosave_path)
            self.conv.dirty = False
        except conversation.ConversationFileError as exc:
            console.notice(f"the last conversation is not kept: {exc}")
            self.autosave_path = None


def _thinking_row(llm: Model, thinking: Thinking) -> str:
    fmt = llm.reasoning
    if fmt is None:
        return "this model does not think"
    style = "<think> tags" if fmt.style == "tags" else "harmony channels"
    return f"{conversation.describe_thinking(thinking)} ({style})"


def default_save_path() -> Path:
    return Path(f"chat-{time.strftime('%Y%m%d-%H%M%S')}.json")


def model_card_rows(llm: Model) -> list[tuple[str, str]]:
    """The model card of `llmcli show`, read from the GGUF header; a file that cannot be
    read again (moved, or on a drive now gone) only shortens /show."""
    from llmcli.gguf_info import model_card
    from llmcli.ui.model_card import card_rows

    try:
        card = model_card(llm.options.path)
    except (LlmcliError, OSError):
        return [("file", str(llm.options.path))]
    return card_rows(card)
