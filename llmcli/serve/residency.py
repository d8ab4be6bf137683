"""Whether the served model is in memory: loaded on demand, unloaded when told
(`POST /api/stop`, `llmcli stop`) or when idle longer than its keep-alive.

A model is never unloaded under a request: requests between their start and their job's
submission are counted (`pending`), and after that the scheduler's own count of jobs
answering and waiting says it is busy. A stop asked while it is busy takes effect the
moment it is idle. A watcher thread checks once a second; `idle since` moves on while the
model is busy, so keep-alive counts from the end of the last answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcli.errors import LlmcliError

if TYPE_CHECKING:
    from llmcli.engine.model import Model
    from llmcli.engine.scheduler import Scheduler

# How often the watcher looks for idle models to unload.
WATCH_S = 1.0


@dataclass(frozen=True)
class KeepAlive:
    """A request's `keep_alive`: seconds idle before unloading; None: never."""

    seconds: float | None


@dataclass
class Resident:
    model: Model
    scheduler: Scheduler
    loaded_at: float
    idle_since: float
    # Requests that hold the model but have not handed the scheduler their job yet.
    pending: int = 0

    def busy(self) -> bool:
        return self.pending > 0 or self.scheduler.load() != (0, 0)


class Residency:
    """The served model's load state; thread-safe. `load` builds the model and its
    scheduler (seconds), `size_bytes` is what they take in memory, estimated."""

    def __init__(
        self,
        *,
        name: str,
        path: Path,
        load: Callable[[], tuple[Model, Scheduler]],
        size_bytes: int,
        keep_alive: float | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.path = path
        self.size_bytes = size_bytes
        # Seconds idle before unloading; None: never.
        self.keep_alive = keep_alive
        self._load = load
        self._clock = clock
        self._lock = threading.Lock()
        self._current: Resident | None = None
        self._unload_when_idle = False
        self._accepting = True
        self._closed = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="llmcli-residency", daemon=True)

    def start(self, model: Model, scheduler: Scheduler) -> None:
        """Take the model loaded at start-up, and begin watching."""
        now = self._clock()
        self._current = Resident(model, scheduler, now, now)
        self._watcher.start()

    # -- what handlers use -------------------------------------------------------------

    @property
    def current(self) -> Resident | None:
        return self._current

    def loaded(self) -> Resident:
        """The model, for a handler that acquired it (or a stream it started)."""
        if self._current is None:
            raise LlmcliError("the model is not loaded")
        return self._current

    def acquire(self, keep_alive: KeepAlive | None = None) -> Resident:
        """The model, loaded first if it is not, held loaded until `release`. A request's
        `keep_alive` replaces the model's from now on. Blocking: call from a worker
        thread."""
        with self._lock:
            if not self._accepting:
                raise LlmcliError("the server is shutting down")
            if self._current is None:
                model, scheduler = self._load()
                now = self._clock()
                self._current = Resident(model, scheduler, now, now)
            resident = self._current
            resident.pending += 1
            self._unload_when_idle = False
            if keep_alive is not None:
                self.keep_alive = keep_alive.seconds
            return resident

    def release(self, resident: Resident) -> None:
        with self._lock:
            resident.pending -= 1
            resident.idle_since = self._clock()

    def load_counts(self) -> tuple[int, int]:
        """(jobs answering, jobs waiting); none when the model is not loaded."""
        resident = self._current
        return resident.scheduler.load() if resident is not None else (0, 0)

    # -- stop, ps ----------------------------------------------------------------------

    def stop(self) -> bool:
        """Unload now if idle (True), else as soon as it is (False)."""
        with self._lock:
            if self._current is None:
                return True
            if self._current.busy():
                self._unload_when_idle = True
                return False
            self._unload()
            return True

    def describe(self) -> list[dict[str, Any]]:
        """What `GET /api/ps` lists: the loaded model, if any."""
        with self._lock:
            resident = self._current
            if resident is None:
                return []
            now = self._clock()
            active, waiting = resident.scheduler.load()
            busy = resident.busy()
            idle = 0.0 if busy else max(0.0, now - resident.idle_since)
            expires = None
            if self.keep_alive is not None and not busy:
                expires = resident.idle_since + self.keep_alive
            return [
                {
                    "name": self.name,
                    "model": str(self.path),
                    "size": self.size_bytes,
                    "parallel": resident.scheduler.parallel,
                    "context_length": resident.scheduler.ctx_per_sequence,
                    "active": active,
                    "waiting": waiting,
                    "loaded_at": resident.loaded_at,
                    "idle_seconds": round(idle, 1),
                    "keep_alive": self.keep_alive,
                    "expires_at": expires,
                    "unloading": self._unload_when_idle,
                }
            ]

    # -- shutting down -----------------------------------------------------------------

    def stop_accepting(self) -> None:
        with self._lock:
            self._accepting = False
            if self._current is not None:
                self._current.scheduler.stop_accepting()

    def interrupt_all(self) -> None:
        resident = self._current
        if resident is not None:
            resident.scheduler.interrupt_all()

    def close(self) -> None:
        self._closed.set()
        if self._watcher.is_alive():
            self._watcher.join()
        with self._lock:
            self._unload()

    # -- inside ------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._closed.wait(WATCH_S):
            self.expire()

    def expire(self) -> None:
        """Unload the model if it was asked to go or has been idle past its keep-alive."""
        with self._lock:
            resident = self._current
            if resident is None:
                return
            if resident.busy():
                resident.idle_since = self._clock()
                return
            idle = self._clock() - resident.idle_since
            if self._unload_when_idle or (self.keep_alive is not None and idle >= self.keep_alive):
                self._unload()

    def _unload(self) -> None:
        resident, self._current = self._current, None
        self._unload_when_idle = False
        if resident is not None:
            resident.scheduler.close()
            resident.model.close()


def served_size(path: Path, *, ctx: int, parallel: int) -> int:
    """What the model takes loaded for serving, estimated from its header as `fit` does:
    weights, each sequence's KV cache, the compute buffer."""
    from llmcli.gguf_file.header import read_header
    from llmcli.memory_plan import compute_bytes, kv_bytes, model_shape, weights_bytes

    headers = [read_header(path)]
    shape = model_shape(headers)
    return (
        weights_bytes(headers)
        + parallel * kv_bytes(shape, ctx)
        + compute_bytes(shape, ctx * parallel)
    )
