"""Chunks from the scheduler thread to the event loop, one wake-up per engine step.

`loop.call_soon_threadsafe` writes to the loop's wake-up pipe on every call: with eight
answers streaming, a step would wake the loop eight times, each write contending for the
interpreter lock with the loop it wakes. The relay queues what a step emits and wakes
the loop once; whatever it has not yet drained goes with the next wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_relays: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Relay] = weakref.WeakKeyDictionary()


class Relay:
    """Hands items from any thread to queues that the loop reads."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[asyncio.Queue[Any], Any]] = []

    def sender(self, queue: asyncio.Queue[T]) -> Callable[[T], None]:
        """A callable for another thread: each item it is given reaches `queue`, in order."""

        def send(item: T) -> None:
            with self._lock:
                wake = not self._pending
                self._pending.append((queue, item))
            if wake:
                # RuntimeError: the loop has closed, and nobody reads any more.
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._deliver)

        return send

    def _deliver(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for queue, item in pending:
            queue.put_nowait(item)


def relay() -> Relay:
    """The running loop's relay."""
    loop = asyncio.get_running_loop()
    found = _relays.get(loop)
    if found is None:
        found = _relays[loop] = Relay(loop)
    return found
