"""One logged answer, as plain data."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any


def new_id() -> str:
    """A unique id that sorts by creation time: nanoseconds since the epoch (16 hex digits
    until the year 2554), then randomness for ids made in the same nanosecond."""
    return f"{time.time_ns():016x}{secrets.token_hex(4)}"


@dataclass
class Entry:
    """A prompt and its answer, with what shaped it and how it went."""

    prompt: str
    answer: str
    model: str
    command: str  # run, batch, chat, serve
    conversation_id: str
    id: str = field(default_factory=new_id)
    created: float = field(default_factory=time.time)
    system: str | None = None
    reasoning: str | None = None
    model_digest: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None
    duration_s: float | None = None
    # stop, length, context (the context filled), interrupted (Ctrl-C, partial answer)
    finish_reason: str | None = None
