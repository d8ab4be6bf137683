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
    from llmcli.remember import AnswerLog


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
    # What browsers may reach (see guard.py): the address listened on, the Host names
    # and the page origins the user allowed.
    bound_host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    # The most bytes one token of the model stands for; None when not yet known, 0 when
    # the tokenizer gives no such bound (see engine.vocab.max_token_bytes).
    max_token_bytes: int | None = None
    # Where answers are logged (`serve --log`); None: they are not.
    answer_log: AnswerLog | None = None
    embed_lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.time)
