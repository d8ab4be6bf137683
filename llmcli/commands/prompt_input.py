"""Where a one-shot prompt comes from: the argument, stdin, or both."""

from __future__ import annotations

import sys
from typing import BinaryIO

from llmcli.errors import UsageError


def read_stdin(stream: BinaryIO | None = None) -> str:
    """All of stdin as text; invalid UTF-8 becomes U+FFFD instead of an error."""
    data = (stream or sys.stdin.buffer).read()
    return data.decode("utf-8", errors="replace")


def combine(argument: str | None, stdin_text: str | None) -> str:
    """Argument, a blank line, then stdin: instructions first, the material after."""
    parts = [p for p in (argument, stdin_text) if p is not None and p.strip()]
    if not parts:
        raise UsageError(
            "no prompt given: pass one as an argument or on stdin",
            hint="for a conversation, use 'llmcli chat'",
        )
    return "\n\n".join(p.strip("\n") for p in parts)
