"""The chat loop at the terminal or on a pipe: where messages come from, and the
session that answers them from the greeting to the end of input."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from llmcli import config
from llmcli.chat.commands import completions
from llmcli.chat.multiline import BlockReader, block_is_open, unwrap_block
from llmcli.chat.session import ChatSession
from llmcli.ui import console

HISTORY_FILE = "chat_history"


def history_path() -> Path:
    """Input history shared by every chat (Up-arrow recalls earlier sessions' lines)."""
    return config.user_data_dir() / HISTORY_FILE


def run(session: ChatSession, *, resumed_from: Path | None = None) -> None:
    """Chat until the user leaves or the input ends; the model is closed either way."""
    try:
        if session.interactive:
            console.notice(
                f"chatting with {session.llm.name} · context {session.llm.n_ctx} tokens · "
                "/help for commands, Ctrl-D to quit"
            )
        if resumed_from is not None:
            session.recap(resumed_from)
        session.run(terminal_inputs() if session.interactive else piped_inputs(stdin_text()))
    finally:
        session.close()


def terminal_inputs() -> Iterator[str]:
    from llmcli.ui.line_input import LineReader
    from llmcli.ui.typeahead import TypedAhead

    reader = LineReader(
        history_file=history_path(),
        words=completions(),
        block_is_open=block_is_open,
    )
    # What is typed while a message is being answered is not echoed into the answer:
    # the next prompt starts with it.
    typed = TypedAhead()
    while True:
        try:
            text = reader.read(typed.text)
        except KeyboardInterrupt:
            typed.text = ""
            continue  # Ctrl-C at the prompt clears the line, like a shell
        except EOFError:
            return
        with typed:
            yield unwrap_block(text)


def stdin_text() -> TextIO:
    # Invalid UTF-8 becomes U+FFFD instead of ending the chat with a decode error.
    return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")


def piped_inputs(stream: TextIO) -> Iterator[str]:
    blocks = BlockReader()
    for line in iter(stream.readline, ""):
        message = blocks.feed(line)
        if message is not None:
            yield message
    rest = blocks.finish()
    if rest is not None:
        yield rest
