"""Messages that span lines: \"\"\" ... \"\"\" blocks, typed at the prompt or piped in."""

from __future__ import annotations

QUOTES = '"""'


def block_is_open(text: str) -> bool:
    """True while a message that started with \"\"\" has not been closed yet."""
    stripped = text.lstrip()
    if not stripped.startswith(QUOTES):
        return False
    return not stripped[len(QUOTES) :].rstrip().endswith(QUOTES)


def unwrap_block(text: str) -> str:
    """The message inside \"\"\" ... \"\"\", or the text unchanged."""
    stripped = text.strip()
    if (
        len(stripped) >= 2 * len(QUOTES)
        and stripped.startswith(QUOTES)
        and stripped.endswith(QUOTES)
    ):
        return stripped[len(QUOTES) : -len(QUOTES)].strip("\n")
    return text


class BlockReader:
    """Joins lines into messages for piped input: one line is one message, except
    inside a \"\"\" block."""

    def __init__(self) -> None:
        self._pending: list[str] = []

    def feed(self, line: str) -> str | None:
        """A complete message, or None while a block is still open."""
        self._pending.append(line.rstrip("\r\n"))
        text = "\n".join(self._pending)
        if block_is_open(text):
            return None
        self._pending.clear()
        return unwrap_block(text)

    def finish(self) -> str | None:
        """What is left at end of input: an unclosed block is still a message."""
        if not self._pending:
            return None
        text = "\n".join(self._pending).strip()
        self._pending.clear()
        return text[len(QUOTES) :].strip("\n") if text.startswith(QUOTES) else text
