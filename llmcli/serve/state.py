"""What every handler of `llmcli serve` shares: the model, the scheduler and the settings."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmcli.engine.model import Model
    from llmcli.engine.scheduler import Scheduler
    from llmcli.engine.types import Sampling


@dataclass
class ServerState:
    model: Model
    scheduler: Scheduler
    served_name: str
    same_model: Callable[[str], bool]
    cached_models: Callable[[], list[str]]
    defaults: Sampling
    api_key: str | None
    max_body_bytes: int
    log: Callable[[str], None]
    load_embedder: Callable[[], Model]
    grammar_for: Callable[[dict[str, Any]], str]
    embedder: Model | None = None
    embed_lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.time)
