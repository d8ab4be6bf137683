"""Reading chat input at a terminal: the only module that imports prompt_toolkit.

Line editing, history kept in a file across sessions, Tab completion of slash commands,
multi-line messages (bracketed paste, \"\"\" blocks, Alt-Enter / Esc Enter).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from llmcli.ui import console

PROMPT = ">>> "
CONTINUATION = "... "
PLACEHOLDER = "Send a message (/help for commands, Ctrl-D to quit)"
# Commands whose argument is a file name.
_PATH_COMMANDS = ("/save", "/load")


class SlashCompleter(Completer):
    """Completes `/command`, then the words listed for it (e.g. `/set NAME`), or a path
    for /save and /load. Ordinary messages get no completions."""

    def __init__(self, words: Mapping[str, Sequence[str]]) -> None:
        self._words = words
        self._paths = PathCompleter(expanduser=True)

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        command, space, rest = text.partition(" ")
        if not space:
            for name in sorted(self._words):
                if name.startswith(command.lower()):
                    yield Completion(name, start_position=-len(command))
            return
        if command in _PATH_COMMANDS:
            yield from self._paths.get_completions(Document(rest), complete_event)
            return
        if " " in rest:
            return
        for word in self._words.get(command, ()):
            if word.startswith(rest.lower()):
                yield Completion(word, start_position=-len(rest))


def _history(path: Path) -> History:
    """A history file, or one in memory when the file cannot be written (read-only
    home): the chat must still start."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab"):
            pass
    except OSError as exc:
        console.notice(f"input history is not kept: cannot write {path} ({exc.strerror})")
        return InMemoryHistory()
    return FileHistory(str(path))


def _key_bindings(block_is_open: Callable[[str], bool]) -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        # Inside a """ block Enter starts a new line; otherwise it sends the message.
        if block_is_open(buffer.text):
            buffer.insert_text("\n")
        else:
            buffer.validate_and_handle()

    @bindings.add("escape", "enter")
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    return bindings


class LineReader:
    """One prompt at a time. `read()` raises EOFError on Ctrl-D (empty line) and
    KeyboardInterrupt on Ctrl-C, which the caller treats as "clear the line"."""

    def __init__(
        self,
        *,
        history_file: Path,
        words: Mapping[str, Sequence[str]],
        block_is_open: Callable[[str], bool],
    ) -> None:
        self._session: PromptSession[str] = PromptSession(
            history=_history(history_file),
            completer=SlashCompleter(words),
            # Tab completes; a menu popping up while typing a message would distract.
            complete_while_typing=False,
            key_bindings=_key_bindings(block_is_open),
            prompt_continuation=CONTINUATION,
            # Dim, and gone at the first key: a reminder that does not get in the way.
            placeholder=FormattedText([("fg:ansibrightblack", PLACEHOLDER)]),
        )
        # Pasted text needs nothing here: prompt_toolkit turns on bracketed paste, so a
        # multi-line paste lands in the buffer whole instead of sending its first line.

    def read(self, default: str = "") -> str:
        """The next message; `default` is already typed in (keys pressed while busy)."""
        return self._session.prompt(PROMPT, default=default)
