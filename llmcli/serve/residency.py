"""Which models are in memory: each loaded on demand by the first request that names it,
within a number of models and a memory budget, unloaded when told (`POST /api/stop`,
`llmcli stop`), when idle longer than its keep-alive, or when another model needs room.

What a model will take is known before loading it, from its GGUF header (`served_size`,
the plan `llmcli fit` makes). A model that needs room unloads the least recently used
idle models first; a busy one is never unloaded for it. When room cannot be made the
request is refused (`NoRoomError`) and the loaded models go on answering: the server is
never pushed into an out-of-memory kill by a load.

A model is never unloaded under a request: requests between their start and their job's
submission are counted (`pending`), and after that the scheduler's own count of jobs
answering and waiting says it is busy. A stop asked while it is busy takes effect the
moment it is idle. A watcher thread checks once a second; `idle since` moves on while a
model is busy, so keep-alive counts from the end of its last answer. Loading happens
outside the lock: requests for the models already loaded go on meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcli.errors import LlmcliError
from llmcli.serve import log

if TYPE_CHECKING:
    from llmcli.engine.model import Model
    from llmcli.engine.scheduler import Scheduler

# How often the watcher looks for idle models to unload.
WATCH_S = 1.0
# The share of the memory available at start that models may take by default: the rest
# is for the server itself, the embedding and rerank models, and the rest of the machine.
DEFAULT_MEMORY_SHARE = 0.9


class NoRoomError(LlmcliError):
    """A model cannot be loaded now: the models that would have to go are answering."""


class TooLargeError(LlmcliError):
    """A model cannot be loaded at all: it needs more than the whole memory budget."""


@dataclass(frozen=True)
class KeepAlive:
    """A request's `keep_alive`: seconds idle before unloading; None: never."""

    seconds: float | None


@dataclass
class Resident:
    """A loaded model, its scheduler, and what the server derives from it on first use."""

    name: str
    path: Path
    model: Model
    scheduler: Scheduler
    size_bytes: int
    # Seconds idle before unloading; None: never.
    keep_alive: float | None
    loaded_at: float
    idle_since: float
    # Requests that hold the model but have not handed the scheduler their job yet.
    pending: int = 0
    unload_when_idle: bool = False
    # The same file loaded for /v1/embeddings and /v1/rerank, on first use.
    embedder: Model | None = None
    reranker: Model | None = None
    embed_lock: threading.Lock = field(default_factory=threading.Lock)
    # The most bytes one token stands for; None when not yet known (engine.vocab).
    max_token_bytes: int | None = None
    # Whether the log has said that the model's template cannot render tools.
    tools_prompt_noted: bool = False

    def busy(self) -> bool:
        return self.pending > 0 or self.scheduler.load() != (0, 0)

    def close(self) -> None:
        self.scheduler.close()
        for loaded in (self.embedder, self.reranker, self.model):
            if loaded is not None:
                loaded.close()


@dataclass(frozen=True)
class Limits:
    """How many models may be loaded at once, and how many bytes they may take together
    (None: no budget). `available` says what the machine has free now (None: unknown)."""

    max_models: int
    max_memory: int | None
    available: Callable[[], int | None] = lambda: None


class Residency:
    """The loaded models, by name; thread-safe. `load` builds a model and its scheduler
    (seconds), `size_of` says what they will take in memory, estimated, before loading."""

    def __init__(
        self,
        *,
        load: Callable[[str, Path], tuple[Model, Scheduler]],
        size_of: Callable[[Path], int],
        limits: Limits,
        keep_alive: float | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        # Seconds idle before a model loaded from now on unloads; None: never.
        self.keep_alive = keep_alive
        self._load = load
        self._size_of = size_of
        self._clock = clock
        self._lock = threading.Condition()
        self._loaded: dict[str, Resident] = {}
        # Models being loaded, and the bytes set aside for each.
        self._loading: dict[str, int] = {}
        self._accepting = True
        self._closed = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="llmcli-residency", daemon=True)

    def start(self, name: str, path: Path, model: Model, scheduler: Scheduler) -> None:
        """Take the model loaded at start-up, and begin watching."""
        with self._lock:
            self._loaded[name] = self._resident(name, path, model, scheduler)
        self._watcher.start()

    # -- what handlers use -------------------------------------------------------------

    def get(self, name: str) -> Resident | None:
        return self._loaded.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    def acquire(self, name: str, path: Path, keep_alive: KeepAlive | None = None) -> Resident:
        """The model `name` (the file `path`), loaded first if it is not, held loaded
        until `release`. A request's `keep_alive` replaces the model's from now on.
        Blocking: call from a worker thread. Raises NoRoomError or TooLargeError when
        the model cannot be loaded now."""
        size: int | None = None
        while True:
            with self._lock:
                resident = self._held(name, keep_alive)
                if resident is not None:
                    return resident
                if size is not None:
                    victims = self._room_for(name, size)
                    self._loading[name] = size
                    break
            # Read from the header outside the lock (a disk read), then look again.
            size = self._size_of(path)
        try:
            for victim in victims:
                victim.close()
                log.line(f"unloaded {victim.name}: least recently used, to make room for {name}")
            model, scheduler = self._load(name, path)
        except BaseException:
            with self._lock:
                del self._loading[name]
                self._lock.notify_all()
            raise
        with self._lock:
            del self._loading[name]
            resident = self._resident(name, path, model, scheduler, size)
            self._loaded[name] = resident
            log.line(f"loaded {name} (about {_gb(size)}; {len(self._loaded)} loaded)")
            self._lock.notify_all()
            return self._held(name, keep_alive) or resident

    def release(self, resident: Resident) -> None:
        with self._lock:
            resident.pending -= 1
            resident.idle_since = self._clock()

    def load_counts(self) -> tuple[int, int]:
        """(jobs answering, jobs waiting), over every loaded model."""
        with self._lock:
            counts = [r.scheduler.load() for r in self._loaded.values()]
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    # -- stop, ps ----------------------------------------------------------------------

    def stop(self, name: str) -> tuple[bool, bool]:
        """(whether it was loaded, whether it is unloaded now): a busy model unloads as
        soon as it is idle."""
        with self._lock:
            resident = self._loaded.get(name)
            if resident is None:
                return False, True
            if resident.busy():
                resident.unload_when_idle = True
                return True, False
            self._unload(name, "asked to")
            return True, True

    def describe(self) -> list[dict[str, Any]]:
        """What `GET /api/ps` lists: every loaded model, the most recently used first."""
        with self._lock:
            now = self._clock()
            listed = []
            for resident in sorted(self._loaded.values(), key=lambda r: -r.idle_since):
                active, waiting = resident.scheduler.load()
                busy = resident.busy()
                idle = 0.0 if busy else max(0.0, now - resident.idle_since)
                expires = None
                if resident.keep_alive is not None and not busy:
                    expires = resident.idle_since + resident.keep_alive
                listed.append(
                    {
                        "name": resident.name,
                        "model": str(resident.path),
                        "size": resident.size_bytes,
                        "parallel": resident.scheduler.parallel,
                        "context_length": resident.scheduler.ctx_per_sequence,
                        "active": active,
                        "waiting": waiting,
                        "loaded_at": resident.loaded_at,
                        "idle_seconds": round(idle, 1),
                        "keep_alive": resident.keep_alive,
                        "expires_at": expires,
                        "unloading": resident.unload_when_idle,
                    }
                )
            return listed

    # -- shutting down -----------------------------------------------------------------

    def stop_accepting(self) -> None:
        with self._lock:
            self._accepting = False
            for resident in self._loaded.values():
                resident.scheduler.stop_accepting()
            self._lock.notify_all()

    def interrupt_all(self) -> None:
        with self._lock:
            residents = list(self._loaded.values())
        for resident in residents:
            resident.scheduler.interrupt_all()

    def close(self) -> None:
        self._closed.set()
        if self._watcher.is_alive():
            self._watcher.join()
        with self._lock:
            for name in list(self._loaded):
                self._unload(name, "the server stops")

    # -- inside ------------------------------------------------------------------------

    def _resident(
        self, name: str, path: Path, model: Model, scheduler: Scheduler, size: int | None = None
    ) -> Resident:
        now = self._clock()
        size = self._size_of(path) if size is None else size
        return Resident(name, path, model, scheduler, size, self.keep_alive, now, now)

    def _held(self, name: str, keep_alive: KeepAlive | None) -> Resident | None:
        """The loaded model, now held by one more request; None when it must be loaded.
        Waits while another request loads it. Called with the lock held."""
        while True:
            if not self._accepting:
                raise LlmcliError("the server is shutting down")
            resident = self._loaded.get(name)
            if resident is not None:
                resident.pending += 1
                resident.unload_when_idle = False
                if keep_alive is not None:
                    resident.keep_alive = keep_alive.seconds
                return resident
            if name not in self._loading:
                return None
            self._lock.wait()

    def _room_for(self, name: str, size: int) -> list[Resident]:
        """The idle models to unload, least recently used first, so that `size` more
        bytes and one more model fit; they are taken out of the table (the caller closes
        them). Raises when no such choice exists. Called with the lock held."""
        limits = self.limits
        budget = limits.max_memory
        if budget is not None and size > budget:
            raise TooLargeError(
                f"model '{name}' needs about {_gb(size)} loaded, more than the server's "
                f"whole memory budget of {_gb(budget)} (--max-memory)"
            )
        available = limits.available()
        idle = sorted(
            (r for r in self._loaded.values() if not r.busy()), key=lambda r: r.idle_since
        )
        count = len(self._loaded) + len(self._loading)
        loading = sum(self._loading.values())
        used = sum(r.size_bytes for r in self._loaded.values()) + loading
        if available is not None:
            available -= loading  # set aside, not yet taken from the machine
        victims: list[Resident] = []
        freed = 0

        def short() -> bool:
            if count - len(victims) + 1 > limits.max_models:
                return True
            if budget is not None and used - freed + size > budget:
                return True
            return available is not None and available + freed < size

        while short():
            if len(victims) == len(idle):
                raise NoRoomError(self._no_room(name, size, used - freed, available))
            victim = idle[len(victims)]
            victims.append(victim)
            freed += victim.size_bytes
        for victim in victims:
            del self._loaded[victim.name]
        return victims

    def _no_room(self, name: str, size: int, used: int, available: int | None) -> str:
        limits = self.limits
        busy = ", ".join(sorted(n for n, r in self._loaded.items() if r.busy())) or "none"
        if len(self._loaded) + len(self._loading) >= limits.max_models:
            why = f"{limits.max_models} model(s) may be loaded at once (--max-models)"
        elif limits.max_memory is not None and used + size > limits.max_memory:
            why = f"{_gb(used)} of the {_gb(limits.max_memory)} budget is taken (--max-memory)"
        else:
            why = f"the machine has {_gb(available or 0)} free"
        return (
            f"cannot load model '{name}' (about {_gb(size)}) now: {why}, and the models that "
            f"would have to make room are answering requests (busy: {busy})"
        )

    def _watch(self) -> None:
        while not self._closed.wait(WATCH_S):
            self.expire()

    def expire(self) -> None:
        """Unload the models asked to go, or idle past their keep-alive."""
        with self._lock:
            for name, resident in list(self._loaded.items()):
                if resident.busy():
                    resident.idle_since = self._clock()
                    continue
                idle = self._clock() - resident.idle_since
                keep = resident.keep_alive
                if resident.unload_when_idle:
                    self._unload(name, "asked to")
                elif keep is not None and idle >= keep:
                    self._unload(name, f"idle {idle:.0f}s (keep-alive {keep:g}s)")

    def _unload(self, name: str, why: str) -> None:
        resident = self._loaded.pop(name)
        resident.close()
        self._lock.notify_all()
        log.line(f"unloaded {name}: {why}")


def _gb(n: int) -> str:
    from llmcli.humanize import format_bytes

    return format_bytes(n)


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


def default_max_memory() -> int | None:
    """The budget unless `--max-memory` says: a share of what is available now (or of
    $LLMCLI_MEMORY), taken before the first model loads; None when unknown."""
    from llmcli.system_memory import memory_for_models

    free = memory_for_models()
    return None if free is None else int(free * DEFAULT_MEMORY_SHARE)
