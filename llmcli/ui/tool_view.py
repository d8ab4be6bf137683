"""Tool calls and their results on stderr, never on stdout: folded to one line each on
a terminal, whole when stderr is a file or a pipe (a log keeps everything). And the
question a call asks at the terminal: y(es), n(o) or a(lways)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from llmcli import terminal

_DIM, _BOLD, _RESET = "\x1b[2m", "\x1b[1m", "\x1b[0m"


def _fold(text: str, room: int) -> str:
    """One line of at most `room` characters, saying how much was left out."""
    lines = text.strip().splitlines() or [""]
    first = lines[0]
    more = f" … (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
    if len(first) + len(more) > room:
        first = first[: max(room - len(more) - 1, 10)] + "…"
    return first + more


def _write(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


def show_call(name: str, arguments: str) -> None:
    term = terminal.current()
    if not term.stderr_isatty:
        _write(f"tool call: {name} {arguments}")
        return
    head = f"→ {name}"
    line = f"{head} {_fold(arguments, _width() - len(head) - 1)}"
    _write(f"{_BOLD}{line}{_RESET}" if term.stderr_styled else line)


def show_result(name: str, text: str, *, failed: bool) -> None:
    term = terminal.current()
    if not term.stderr_isatty:
        label = "tool error" if failed else "tool result"
        _write(f"{label}: {name}: {text}")
        return
    head = f"← {name}{' failed' if failed else ''}:"
    line = f"{head} {_fold(text, _width() - len(head) - 1)}"
    _write(f"{_DIM}{line}{_RESET}" if term.stderr_styled else line)


def ask(name: str, arguments: str) -> str:
    """'y', 'n' or 'a', asked at the terminal until one of them comes; 'n' at the end of
    input."""
    show_call(name, arguments)
    with _typed_lines():
        return _answer(name)


def _answer(name: str) -> str:
    while True:
        sys.stderr.write(f"Run {name}? [y]es, [n]o, [a]lways for {name}: ")
        sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            sys.stderr.write("\n")
            return "n"
        answer = line.strip().lower()[:1]
        if answer in ("y", "n", "a"):
            return answer


@contextmanager
def _typed_lines() -> Iterator[None]:
    """The terminal echoes and reads whole lines while the question waits: a chat turns
    echo off while an answer streams, and the question comes in the middle of one."""
    try:
        import termios

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):
        yield
        return
    except termios.error:
        yield
        return
    lines = termios.tcgetattr(fd)
    lines[3] |= termios.ECHO | termios.ICANON
    try:
        termios.tcsetattr(fd, termios.TCSANOW, lines)
        yield
    finally:
        with suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, saved)
