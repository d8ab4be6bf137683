"""Ctrl-C while an answer streams: stop after the current piece, keep what was shown."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any


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
