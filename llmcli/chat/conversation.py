"""A chat as plain data: system prompt, turns, sampling settings and the model's name."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmcli.engine.reasoning import Thinking
from llmcli.engine.types import Message, Sampling


@dataclass
class Conversation:
    """System prompt, turns, sampling settings and the model reference of one chat.

    Turns are stored exactly as typed and as streamed: re-rendering them must give the
    same tokens the engine already holds in its KV cache, or every turn is re-evaluated.
    """

    model: str | None = None
    system: str | None = None
    turns: list[Message] = field(default_factory=list)
    sampling: Sampling = field(default_factory=Sampling)
    # Whether a reasoning model thinks, and how hard (/think); not saved with the chat.
    thinking: Thinking = field(default_factory=Thinking)
    # Whether the loaded model can think at all (None: not known); set by the session.
    model_thinks: bool | None = None
    # Set by every change; the chat loop saves the last conversation when it is set.
    dirty: bool = False

    def messages(self) -> list[Message]:
        """System prompt and turns; an assistant turn's tool calls and a tool result's
        call id come along (the template renders them)."""
        head = [Message(role="system", content=self.system)] if self.system else []
        return head + [_plain(m) for m in self.turns]

    def ask(self, text: str, attachments: list[str] | None = None) -> None:
        message = Message(role="user", content=text)
        if attachments:
            message["attachments"] = attachments
        self.turns.append(message)
        self.dirty = True

    def answer(self, text: str) -> None:
        self.turns.append(Message(role="assistant", content=text))
        self.dirty = True

    def add(self, turns: list[Message]) -> None:
        """Turns of an answer that called tools: assistant turns with their calls, the
        tool results, and the answer."""
        self.turns += turns
        self.dirty = True

    def drop_unanswered(self) -> None:
        """Remove a trailing user message that got no answer (an error, or Ctrl-C before
        the first word), so that roles keep alternating as most templates require."""
        if self.turns and self.turns[-1]["role"] == "user":
            self.turns.pop()
            self.dirty = True

    def prepare_retry(self) -> bool:
        """Drop the last answer so the last question can be answered again.
        False when there is no question to retry."""
        # An answer that called tools is several turns: all go.
        while self.turns and self.turns[-1]["role"] in ("assistant", "tool"):
            self.turns.pop()
        if not self.turns or self.turns[-1]["role"] != "user":
            return False
        self.dirty = True
        return True

    def clear(self) -> None:
        self.turns.clear()
        self.dirty = True

    def set_system(self, text: str | None) -> None:
        self.system = text or None
        self.dirty = True

    def set_sampling(self, sampling: Sampling) -> None:
        self.sampling = sampling
        self.dirty = True


def _plain(message: Message) -> Message:
    """A turn as the template and the chat file see it: its role, its text, its
    attachments, and an assistant's tool calls or a tool result's call id."""
    out = Message(role=message["role"], content=message["content"])
    if message.get("attachments"):
        out["attachments"] = list(message["attachments"])
    if message.get("tool_calls"):
        out["tool_calls"] = list(message["tool_calls"])
    if message.get("tool_call_id"):
        out["tool_call_id"] = message["tool_call_id"]
    return out
