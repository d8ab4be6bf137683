"""What the process is attached to, decided once: the single source for every choice
that depends on the terminal (colour, Markdown, progress bars, prompts)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


@dataclass(frozen=True)
class Terminal:
    stdin_isatty: bool
    stdout_isatty: bool
    stderr_isatty: bool
    # NO_COLOR (any value) turns colour off; FORCE_COLOR turns it on even when piped.
    no_color: bool = False
    force_color: bool = False

    @classmethod
    def detect(cls) -> Terminal:
        return cls(
            stdin_isatty=_isatty(sys.stdin),
            stdout_isatty=_isatty(sys.stdout),
            stderr_isatty=_isatty(sys.stderr),
            no_color="NO_COLOR" in os.environ and os.environ["NO_COLOR"] != "",
            force_color=os.environ.get("FORCE_COLOR", "") not in ("", "0"),
        )

    @property
    def stdout_styled(self) -> bool:
        """Rich output (Markdown, tables, colour) on stdout."""
        return (self.stdout_isatty or self.force_color) and not self.no_color

    @property
    def stdout_rich(self) -> bool:
        """Markdown and layout on stdout: a terminal, even when colour is off."""
        return self.stdout_isatty or self.force_color

    @property
    def stderr_styled(self) -> bool:
        return (self.stderr_isatty or self.force_color) and not self.no_color

    @property
    def stderr_live(self) -> bool:
        """Progress bars and spinners: only for a person watching stderr."""
        return self.stderr_isatty


_current: Terminal | None = None


def current() -> Terminal:
    global _current
    if _current is None:
        _current = Terminal.detect()
    return _current
