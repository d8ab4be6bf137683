"""The keyboard while an answer streams to a terminal: nothing typed is echoed into it.

The terminal itself echoes what is typed, wherever the cursor is: into the middle of an
answer, and a Ctrl-C as "^C", which can push the cursor onto a new line under a live
display that then redraws one line too low and leaves its last line behind twice.
Echo is off while an answer streams; what was typed meanwhile stays queued, for the next
prompt or for the shell.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, TextIO

try:
    import termios
except ImportError:  # not a POSIX terminal: nothing echoes on its own
    termios = None  # type: ignore[assignment]


def _fd(stream: TextIO | None) -> int | None:
    """The descriptor of `stream` when it is a terminal."""
    if termios is None or stream is None:
        return None
    try:
        fd = stream.fileno()
        return fd if os.isatty(fd) else None
    except (AttributeError, OSError, ValueError):
        return None


@contextmanager
def echo_off(stream: TextIO | None = None) -> Iterator[None]:
    """While the block runs, the terminal behind `stream` (stdout by default, else
    stderr) does not echo keys; the settings it had come back after, whatever happens."""
    fd = _fd(stream) if stream is not None else _fd(sys.stdout)
    if fd is None and stream is None:
        fd = _fd(sys.stderr)
    if fd is None:
        yield
        return
    try:
        saved = termios.tcgetattr(fd)
        quiet = termios.tcgetattr(fd)
        quiet[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except termios.error:
        yield
        return
    try:
        yield
    finally:
        with suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, saved)


class TypedAhead:
    """Keys typed at the terminal on stdin while the program is busy (a chat answering):
    not echoed, and kept, as text for the next prompt to start with.

    Use as a context manager around the busy part; `text` holds what was typed once the
    block has ended.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._fd = _fd(stream if stream is not None else sys.stdin)
        self._saved: list[Any] | None = None
        self.text = ""

    def __enter__(self) -> TypedAhead:
        self.text = ""
        if self._fd is None:
            return self
        try:
            self._saved = termios.tcgetattr(self._fd)
            quiet = termios.tcgetattr(self._fd)
            # Not line by line either: a line typed half-way is then readable, not held
            # back by the terminal until Enter. Ctrl-C still interrupts (ISIG stays on).
            quiet[3] &= ~(termios.ECHO | termios.ICANON)
            quiet[6][termios.VMIN] = 1
            quiet[6][termios.VTIME] = 0
            termios.tcsetattr(self._fd, termios.TCSANOW, quiet)
        except termios.error:
            self._saved = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is None or self._saved is None:
            return
        try:
            self.text = typed_text(_pending(self._fd))
        finally:
            with suppress(termios.error):
                termios.tcsetattr(self._fd, termios.TCSANOW, self._saved)
            self._saved = None


def _pending(fd: int) -> bytes:
    """Every byte already waiting on `fd`, without waiting for more."""
    import select

    data = b""
    while len(data) < 65536:
        try:
            ready, _, _ = select.select([fd], [], [], 0)
            if not ready:
                break
            chunk = os.read(fd, 4096)
        except (OSError, ValueError):
            break
        if not chunk:
            break
        data += chunk
    return data


# Escape sequences (arrow keys, function keys, bracketed-paste marks): not text.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|O.|.)?", re.DOTALL)


def typed_text(data: bytes) -> str:
    """What a person typed, as the line editor would have it: Backspace takes back a
    character, Ctrl-U the line, Enter separates lines; other keys that are no text are
    dropped."""
    text = _ESCAPES.sub("", data.decode("utf-8", errors="replace"))
    out: list[str] = []
    for char in text.replace("\r\n", "\n").replace("\r", "\n"):
        if char in ("\x7f", "\b"):
            if out and out[-1] != "\n":
                out.pop()
        elif char == "\x15":  # Ctrl-U
            while out and out[-1] != "\n":
                out.pop()
        elif char == "\n" or char == "\t" or char >= " ":
            out.append(char)
    return "".join(out).strip("\n")
