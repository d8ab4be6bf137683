"""The server's log: one line per request, and the traceback of any error it did not
expect, on stderr while the server runs.

Through the standard `logging` module rather than a function handed down from the command,
so that every part of the server (the gate, the deadlines, the error table) writes to the
same log without being given it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

LOGGER = logging.getLogger("llmcli.serve")


def line(message: str) -> None:
    LOGGER.info(message)


def failure(message: str, exc: BaseException) -> None:
    """An error the server did not expect: the message and its traceback, for whoever
    runs the server (never for the client, whom it would tell the server's internals)."""
    LOGGER.error(message, exc_info=exc)


@contextmanager
def to_stderr() -> Iterator[None]:
    """While serving, the log goes to stderr as plain lines (no level, no time: the
    request lines read as they always have)."""
    handler = logging.StreamHandler()  # sys.stderr as it is now
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    # The root logger's handlers, if anyone set some, would print each line twice.
    level, propagate = LOGGER.level, LOGGER.propagate
    LOGGER.propagate = False
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        handler.close()
        # A server run inside a longer-lived process (a test, an embedding app) leaves
        # the logger as it found it.
        LOGGER.setLevel(level)
        LOGGER.propagate = propagate
