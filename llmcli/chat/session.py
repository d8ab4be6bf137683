"""A chat session: one conversation, the model kept loaded across turns, and the
screen. Keeping the same Model for every turn is what makes turns fast:
llama-cpp-python reuses the KV cache for the prompt prefix it has already seen.

Longer than the ~350 lines a module aims at: it is the one object that holds a chat's
state (conversation, model, last answer), and each command that changes it is a method;
the parts that need none of it live beside it (chat_file, commands, tool_turn, show)."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from llmcli.chat import chat_file, show
from llmcli.chat.attach import ChatMedia
from llmcli.chat.commands import Action, Outcome, dispatch
from llmcli.chat.conversation import Conversation
from llmcli.chat.ctrl_c import StopOnCtrlC
from llmcli.chat.trimming import MessageTooLong, fit_context
from llmcli.engine.reasoning import Kind
from llmcli.engine.repetition import REPEATING, until_repeating
from llmcli.engine.types import Decoding, GenerationResult, LoadOptions, Message
from llmcli.errors import LlmcliError, ToolNotApprovedError, ToolServerError
from llmcli.projector_files import projector_beside
from llmcli.prompting import thinking_budget_note
from llmcli.resolve.with_progress import model_file
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.engine.generation import Generation
    from llmcli.engine.model import Model
    from llmcli.engine.sequence import Part
    from llmcli.remember import AnswerLog
    from llmcli.tools.toolbox import Toolbox


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
        answer_log: AnswerLog | None = None,
        projector: Path | None = None,
        tools: Toolbox | None = None,
    ) -> None:
        self.conv = conv
        self.media = ChatMedia(projector)
        # --tool-file and --mcp: answers go through the tool loop (chat.tool_turn).
        self.tools = tools
        self.answer_log = answer_log
        conv.model_thinks = llm.reasoning is not None
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
        self.media.release()
        if self.tools is not None:
            self.tools.close()
        self.llm.close()
        failure = self.answer_log.close() if self.answer_log is not None else None
        if failure:
            console.notice(f"answers of this chat were not logged: {failure}")

    def run(self, inputs: Iterator[str]) -> None:
        for text in inputs:
            if not self.handle(text):
                return

    def handle(self, text: str) -> bool:
        """Act on one input: a message or a slash command. False: the user is leaving."""
        if not text.strip():
            return True
        try:
            outcome = dispatch(self.conv, text)
            if outcome is None:
                self.conv.ask(*self.media.take(self.wrap(text) if self.wrap else text))
                self.reply()
            elif not self._command(outcome):
                return False
        except LlmcliError as exc:
            self.conv.drop_unanswered()  # a message the model could not take is not kept
            if not self.interactive and isinstance(exc, ToolNotApprovedError | ToolServerError):
                raise  # piped: the chat ends with the exit code that says why
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
        if self.tools is not None:
            return self._reply_with_tools(self.tools)
        llm = self.llm
        try:
            fit = fit_context(self.conv, self._render, llm.n_ctx)
        except MessageTooLong as exc:
            self.conv.drop_unanswered()
            console.error(str(exc))
            return None
        if fit.dropped_messages:
            console.notice(
                f"the context is full: dropped the {fit.dropped_messages} oldest messages "
                "(the system prompt is kept)"
            )
        started = time.perf_counter()
        try:
            result = self._answer(fit.tokens)
        finally:
            self.media.release()
        self.last = result
        if self._keep(result):
            self.log_answer(result, started)
        return result

    def _answer(self, tokens: list[int]) -> GenerationResult:
        media = self.media.prompt  # that of the prompt rendered last: this one
        generation = self.llm.generate(tokens, self.conv.sampling, self.decoding, media=media)
        result = generation.result
        # Piped input: Ctrl-C ends the program, as it would any other pipeline.
        stopper = StopOnCtrlC() if self.interactive else None
        try:
            with stopper if stopper is not None else nullcontext():
                self._stream(generation, stopper)
        except KeyboardInterrupt:
            if stopper is None:
                raise
            result.finish_reason = "interrupted"
        return result

    def _reply_with_tools(self, box: Toolbox) -> GenerationResult | None:
        from llmcli.chat.tool_turn import reply_with_tools

        started = time.perf_counter()
        done = reply_with_tools(
            self.conv,
            self.llm,
            box,
            self.decoding,
            writer=self._writer,
            interactive=self.interactive,
        )
        if done is None:
            return None
        self.last = done.result
        self.write_out("\n")  # a blank line between an answer and what follows
        self.log_answer(done.result, started)
        return done.result

    @contextmanager
    def _writer(self) -> Iterator[Callable[[Kind, str], None]]:
        with console.ReplyWriter(
            markdown=self.markdown, show_thinking=self.show_thinking, out=self.out
        ) as reply:
            yield reply.write

    def log_answer(self, result: GenerationResult, started: float) -> None:
        """The turn just kept goes to the answer log; a chat that starts over (/clear,
        /load) starts a new conversation there."""
        log = self.answer_log
        if log is None:
            return
        asked = [m["content"] for m in self.conv.turns if m["role"] == "user"]
        question = asked[-1]
        if len(asked) == 1:
            log.conversation_id = log.new_conversation()
        log.add(
            prompt=question,
            system=self.conv.system,
            result=result,
            sampling=self.conv.sampling,
            started=started,
            interrupted=result.finish_reason == "interrupted",
        )

    def _render(self, messages: Sequence[Message]) -> list[int]:
        return self.media.render(self.llm, messages, self.conv.thinking)

    def _stream(self, generation: Generation, stopper: StopOnCtrlC | None) -> None:
        result = generation.result
        with console.ReplyWriter(
            markdown=self.markdown, show_thinking=self.show_thinking, out=self.out
        ) as writer:
            chunks: Iterator[Part] = generation
            if self.conv.sampling.max_tokens is None:  # a length set is the user's to fill
                chunks = until_repeating(chunks, result)
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
                generation.close()

    def _keep(self, result: GenerationResult) -> bool:
        """The answer joins the conversation, its thinking does not: templates that say
        how to show earlier thinking drop it, and it would fill the context. False when
        nothing was kept."""
        interrupted = result.finish_reason == "interrupted"
        if interrupted and not result.text:
            self.conv.drop_unanswered()
            console.notice("stopped before the answer began; the message was not kept")
            return False
        self.conv.answer(result.text)
        self.write_out("\n")  # a blank line between an answer and what follows
        if interrupted:
            console.notice("stopped; the partial answer is kept")
        elif result.reasoning_tokens and result.finish_reason == "length":
            console.notice(thinking_budget_note(result, self.conv.sampling.max_tokens) or "")
        elif not result.text:
            console.notice("the model gave an empty answer")
        elif result.finish_reason == "repetition":
            console.notice(f"{REPEATING} (/set max_tokens lets it run on)")
        elif result.finish_reason == "length":
            limit = self.conv.sampling.max_tokens
            why = f"max_tokens ({limit})" if limit == result.completion_tokens else "the context"
            console.notice(f"the answer was cut short by {why}")
        return True

    def write_out(self, text: str) -> None:
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
        if outcome.action == "exit":
            return False
        if outcome.action is not None:
            self._actions()[outcome.action](outcome.argument)
        return True

    def _actions(self) -> dict[Action, Callable[[str], None]]:
        """What the session does for each command that needs the model, files or screen."""
        return {
            "retry": lambda _: self.retry(),
            "show": lambda _: console.info("\n".join(self.show_lines())),
            "stats": lambda _: console.info(self.stats_text()),
            "save": self.save,
            "load": lambda argument: self.load_file(Path(argument).expanduser()),
            "model": self.switch_model,
            "attach": lambda argument: console.info(self.media.attach(argument)),
            "tools": lambda _: console.info("\n".join(self.tool_lines())),
        }

    def tool_lines(self) -> list[str]:
        if self.tools is None:
            return ["no tools: start the chat with --tool-file FILE.py or --mcp SERVER"]
        return self.tools.lines()

    def retry(self) -> None:
        if self.conv.prepare_retry():
            self.reply()
        else:
            console.error("nothing to retry yet")

    def stats_text(self) -> str:
        return show.stats_text(self.last, self.llm.n_ctx)

    def show_lines(self) -> list[str]:
        return show.show_lines(self.conv, self.llm)

    def save(self, argument: str) -> None:
        path = Path(argument).expanduser() if argument else default_save_path()
        if path.exists() and not path.is_dir():
            try:
                chat_file.load(path)
            except chat_file.ConversationFileError:
                raise chat_file.ConversationFileError(
                    f"{path} exists and is not an llmcli chat file; not overwriting it"
                ) from None
        if path.is_dir():
            path = path / default_save_path().name
        chat_file.save(self.conv, path)
        console.info(f"saved {len(self.conv.messages())} messages to {path}")

    def load_file(self, path: Path) -> None:
        loaded = chat_file.load(path)  # raises before anything changes
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
        self.media.projector = projector_beside(path)
        self.conv.model = model_label(ref, path)
        self.conv.model_thinks = self.llm.reasoning is not None
        self.conv.dirty = True
        self.last = None
        console.notice(f"now chatting with {self.llm.name} · context {self.llm.n_ctx} tokens")

    def _autosave(self) -> None:
        if self.autosave_path is None or not self.conv.dirty:
            return
        try:
            chat_file.save(self.conv, self.autosave_path)
            self.conv.dirty = False
        except chat_file.ConversationFileError as exc:
            console.notice(f"the last conversation is not kept: {exc}")
            self.autosave_path = None


def default_save_path() -> Path:
    return Path(f"chat-{time.strftime('%Y%m%d-%H%M%S')}.json")


def model_label(ref: str | None, path: Path) -> str:
    """What a saved conversation records as its model: the reference as typed, but a
    local file as an absolute path so that the file still works from another directory."""
    if ref is None:
        from llmcli.resolve.resolver import default_ref

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
