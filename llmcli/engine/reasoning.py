"""Reasoning ("thinking") models: how a template marks the thinking, how it is switched
on and off, and the split of a streamed answer into thinking and answer.

Pure: no llama_cpp import. Two ways of marking thinking are known:

- tags: `<think>...</think>` before the answer (Qwen3, DeepSeek-R1, SmolLM3, QwQ). Some
  templates open the block themselves at the end of the prompt (DeepSeek-R1 distills,
  Qwen3 with thinking in some builds): the answer then starts inside it.
- harmony (gpt-oss): `<|channel|>analysis<|message|>...<|end|>` is thinking, then
  `<|start|>assistant<|channel|>final<|message|>...` is the answer.

How the template takes the switch is read from the template itself: an `enable_thinking`
variable (Qwen3, SmolLM3, llama.cpp's DeepSeek-R1 templates), a `reasoning_effort`
level (gpt-oss: low, medium, high) or a `/think` / `/no_think` word in the system prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from copy import copy
from dataclasses import dataclass
from typing import Any, Literal

from llmcli.engine.types import Message

Kind = Literal["thinking", "answer"]
Style = Literal["tags", "harmony"]
Switch = Literal["enable_thinking", "reasoning_effort", "no_think"]

OPEN_TAG, CLOSE_TAG = "<think>", "</think>"
HARMONY_MARKERS = ("<|channel|>", "<|message|>", "<|start|>", "<|end|>", "<|constrain|>")
EFFORT_LEVELS = ("low", "medium", "high")
# A harmony message addressed to a tool (tool_calls.HARMONY opens a call with it).
TOOL_RECIPIENT = "to=functions."


@dataclass(frozen=True)
class ReasoningFormat:
    """How one model marks and switches its thinking."""

    style: Style
    switch: Switch | None = None

    @property
    def markers(self) -> tuple[str, ...]:
        """Token texts that carry the structure; the engine renders them even when they
        are control tokens (which it otherwise drops from the answer)."""
        return HARMONY_MARKERS if self.style == "harmony" else (OPEN_TAG, CLOSE_TAG)

    @property
    def levels(self) -> tuple[str, ...]:
        return EFFORT_LEVELS if self.switch == "reasoning_effort" else ()


def detect(template: str | None, vocab_has: Iterable[str] = ()) -> ReasoningFormat | None:
    """The reasoning format of a model, from its chat template and the marker tokens its
    vocabulary holds; None for a model that does not think."""
    text = template or ""
    tokens = set(vocab_has)
    if "<|channel|>" in text or ("<|channel|>" in tokens and "<|message|>" in tokens):
        style: Style = "harmony"
    elif OPEN_TAG in text or CLOSE_TAG in text or OPEN_TAG in tokens:
        style = "tags"
    else:
        return None
    switch: Switch | None = None
    if "enable_thinking" in text:
        switch = "enable_thinking"
    elif "reasoning_effort" in text:
        switch = "reasoning_effort"
    elif "/no_think" in text:
        switch = "no_think"
    return ReasoningFormat(style, switch)


@dataclass(frozen=True)
class Thinking:
    """What the user asked for: think or not (None: the model's default) and a level
    (None: the model's default)."""

    enabled: bool | None = None
    effort: str | None = None


def template_inputs(
    fmt: ReasoningFormat | None, thinking: Thinking, messages: Sequence[Message]
) -> tuple[dict[str, Any], list[Message]]:
    """The extra template variables and the messages that carry the user's choice."""
    if fmt is None or fmt.switch is None:
        return {}, list(messages)
    if fmt.switch == "enable_thinking":
        # Passed even by default: llama.cpp's own templates read an absent value as off.
        return {"enable_thinking": thinking.enabled is not False}, list(messages)
    if fmt.switch == "reasoning_effort":
        effort = thinking.effort or ("low" if thinking.enabled is False else None)
        return ({"reasoning_effort": effort} if effort else {}), list(messages)
    if thinking.enabled is None:
        return {}, list(messages)
    word = "/think" if thinking.enabled else "/no_think"
    out = [copy(m) for m in messages]
    if out and out[0]["role"] == "system":
        out[0]["content"] = f"{out[0]['content']} {word}"
    else:
        out.insert(0, Message(role="system", content=word))
    return {}, out


def caveats(fmt: ReasoningFormat | None, thinking: Thinking) -> list[str]:
    """What cannot be done as asked with this model, one remark each."""
    notes: list[str] = []
    if thinking.effort is not None and (fmt is None or not fmt.levels):
        notes.append("this model has no thinking levels; --reasoning-effort is ignored")
    if fmt is None:
        if thinking.enabled:
            notes.append("this model does not think; --think is ignored")
        return notes
    if thinking.enabled is False:
        if fmt.switch == "reasoning_effort":
            notes.append("this model cannot stop thinking; it thinks at the low level")
        elif fmt.switch is None:
            notes.append("this model's template has no switch for thinking; it still thinks")
    return notes


def opens_thinking(prompt_tail: str, fmt: ReasoningFormat | None) -> bool:
    """True when the prompt ends inside a thinking block its template opened."""
    if fmt is None or fmt.style != "tags":
        return False
    return prompt_tail.rfind(OPEN_TAG) > prompt_tail.rfind(CLOSE_TAG)


Part = tuple[Kind, str]


class Splitter:
    """Splits streamed text into thinking and answer, holding back only as much text as
    could be the start of a marker split across pieces."""

    def __init__(self, fmt: ReasoningFormat, *, inside: bool = False) -> None:
        self.fmt = fmt
        self.kind: Kind = "thinking" if inside else "answer"
        self._buf = ""
        self._started = {"thinking": False, "answer": False}
        # tags: a block may open only before the answer has begun.
        self._may_open = not inside
        # harmony: reading a message header, up to <|message|>.
        self._header = fmt.style == "harmony"
        # harmony: inside a message to a tool.
        self._call = False

    @property
    def thinking(self) -> bool:
        return self.kind == "thinking"

    @property
    def pending(self) -> bool:
        """Text is held back that may yet open a thinking block."""
        return bool(self._buf) and self.kind == "answer" and (self._may_open or self._header)

    def feed(self, text: str) -> list[Part]:
        self._buf += text
        if self.fmt.style == "harmony":
            return self._harmony(final=False)
        return self._tags(final=False)

    def flush(self) -> list[Part]:
        if self.fmt.style == "harmony":
            return self._harmony(final=True)
        return self._tags(final=True)

    # -- <think> tags ---------------------------------------------------------------

    def _tags(self, *, final: bool) -> list[Part]:
        out: list[Part] = []
        while self._buf:
            if self.kind == "answer" and self._may_open:
                stripped = self._buf.lstrip()
                if stripped.startswith(OPEN_TAG):
                    self._buf = stripped[len(OPEN_TAG) :]
                    self.kind, self._may_open = "thinking", False
                    continue
                if OPEN_TAG.startswith(stripped) and not final:
                    break  # could still become <think>
                self._may_open = False
            if self.kind == "thinking":
                at = self._buf.find(CLOSE_TAG)
                if at >= 0:
                    self._emit(out, "thinking", self._buf[:at])
                    self._buf = self._buf[at + len(CLOSE_TAG) :]
                    self.kind = "answer"
                    continue
                keep = 0 if final else _partial_suffix(self._buf, CLOSE_TAG)
                self._emit(out, "thinking", self._buf[: len(self._buf) - keep])
                self._buf = self._buf[len(self._buf) - keep :]
                break
            self._emit(out, "answer", self._buf)
            self._buf = ""
        return out

    # -- harmony channels ---------------------------------------------------------------

    _CHANNEL = re.compile(r"<\|channel\|>\s*([A-Za-z]+)")
    _BODY_END = re.compile(r"<\|(?:end|return|call)\|>|<\|start\|>")

    def _harmony(self, *, final: bool) -> list[Part]:
        out: list[Part] = []
        while self._buf:
            if self._header:
                at = self._buf.find("<|message|>")
                if at >= 0:
                    match = self._CHANNEL.search(self._buf[:at])
                    channel = match.group(1) if match else "final"
                    self.kind = "thinking" if channel == "analysis" else "answer"
                    header = self._buf[:at]
                    self._buf = self._buf[at + len("<|message|>") :]
                    self._header = False
                    recipient = header.find(TOOL_RECIPIENT)
                    if recipient >= 0:
                        # A tool call: its header goes on as answer text, for the call
                        # parser, and so does the end of its message.
                        self.kind, self._call = "answer", True
                        self._emit(out, "answer", header[recipient:] + "<|message|>")
                    continue
                if not final and _could_be_header(self._buf):
                    break
                # Not a header after all: the model answered without one.
                self._header, self.kind = False, "answer"
                continue
            match = self._BODY_END.search(self._buf)
            if match:
                self._emit(out, self.kind, self._buf[: match.start()])
                if self._call:
                    self._emit(out, "answer", "<|call|>")
                    self._call = False
                rest = self._buf[match.end() :]
                self._buf = match.group(0) + rest if match.group(0) == "<|start|>" else rest
                self._header = True
                continue
            keep = 0 if final else max(_partial_suffix(self._buf, m) for m in HARMONY_MARKERS)
            for end in ("<|return|>", "<|call|>"):
                keep = max(keep, 0 if final else _partial_suffix(self._buf, end))
            self._emit(out, self.kind, self._buf[: len(self._buf) - keep])
            self._buf = self._buf[len(self._buf) - keep :]
            break
        return out

    def _emit(self, out: list[Part], kind: Kind, text: str) -> None:
        if not self._started[kind]:
            text = text.lstrip()
        if not text:
            return
        self._started[kind] = True
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest end of `text` that is a proper start of `marker`."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


def _could_be_header(text: str) -> bool:
    """True while `text` can still grow into `<|start|>assistant<|channel|>X<|message|>`."""
    if len(text) > 160:
        return False
    rest = text
    for part in ("<|start|>", "assistant"):
        rest = rest.lstrip()
        if rest.startswith(part):
            rest = rest[len(part) :]
        elif part.startswith(rest):
            return True  # a start of it, or nothing yet
    rest = rest.lstrip()
    return rest.startswith("<|channel|>") or "<|channel|>".startswith(rest)
