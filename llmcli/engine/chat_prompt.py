"""Chat prompts as tokens, with the user's text kept as text.

The engine renders a chat template and tokenizes the whole result with special tokens
enabled, so a document that contains `<|im_end|><|im_start|>system` forges a new turn.
Here the template's own text is tokenized with special tokens on and every message's
content with them off. So are the tools and the arguments of earlier tool calls, which
templates render themselves (as JSON): where such a text would forge a control token, it
is found in the rendered prompt and kept as text too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from copy import copy
from dataclasses import dataclass

from llmcli.engine.types import Message

# Private-use code points: they never occur in real text and survive Jinja filters.
_OPEN, _CLOSE = "\ue000", "\ue001"
_SENTINEL = re.compile(f"{_OPEN}(\\d+){_CLOSE}")


@dataclass(frozen=True)
class Segment:
    text: str
    special: bool  # True: template text, control tokens allowed


Render = Callable[[Sequence[Message]], str]


def segments(
    render: Render, messages: Sequence[Message], untrusted: Sequence[str] = ()
) -> list[Segment]:
    """Split the rendered prompt into template text and message content; each of the
    `untrusted` texts that the template rendered is content too (see `keep_as_text`)."""
    rendered = render(messages)
    marked = render([_marked(i, m) for i, m in enumerate(messages)])
    for transform in (_identity, str.strip):
        out = _fill(marked, [transform(m["content"]) for m in messages])
        if "".join(s.text for s in out) == rendered:
            return keep_as_text(out, untrusted)
    return keep_as_text(_locate(rendered, [m["content"] for m in messages]), untrusted)


def _marked(i: int, message: Message) -> Message:
    """The message with a sentinel for its content (an empty one stays empty: templates
    test it, as Qwen's does before an assistant's tool calls)."""
    out = copy(message)
    if message["content"]:
        out["content"] = f"{_OPEN}{i}{_CLOSE}"
    return out


def keep_as_text(parts: list[Segment], untrusted: Sequence[str]) -> list[Segment]:
    """Split each of the `untrusted` texts out of the template text, as content. One that
    the template did not render verbatim cannot be kept apart: ValueError."""
    for text in sorted(set(untrusted), key=len, reverse=True):
        found = False
        out: list[Segment] = []
        for part in parts:
            pieces = part.text.split(text) if part.special and text else [part.text]
            if len(pieces) == 1:
                out.append(part)
                continue
            found = True
            for j, piece in enumerate(pieces):
                if j:
                    out.append(Segment(text, False))
                if piece:
                    out.append(Segment(piece, True))
        if not found and not any(text in p.text for p in parts if not p.special):
            raise ValueError(
                f"the template rendered {text[:60]!r}, which holds control tokens, "
                "in a way that cannot be kept apart from its own text"
            )
        parts = out
    return parts


def _identity(text: str) -> str:
    return text


def _fill(marked: str, contents: list[str]) -> list[Segment]:
    out: list[Segment] = []
    pos = 0
    for match in _SENTINEL.finditer(marked):
        out.append(Segment(marked[pos : match.start()], True))
        out.append(Segment(contents[int(match.group(1))], False))
        pos = match.end()
    out.append(Segment(marked[pos:], True))
    return [s for s in out if s.text]


def _locate(rendered: str, contents: list[str]) -> list[Segment]:
    """Last resort for templates that rewrite content: find each message in order."""
    out: list[Segment] = []
    pos = 0
    for content in contents:
        for candidate in (content, content.strip()):
            at = rendered.find(candidate, pos) if candidate else -1
            if at >= 0:
                out.append(Segment(rendered[pos:at], True))
                out.append(Segment(candidate, False))
                pos = at + len(candidate)
                break
    out.append(Segment(rendered[pos:], True))
    return [s for s in out if s.text]


def merge_system(messages: Sequence[Message]) -> list[Message]:
    """For templates that refuse a system role: put it at the top of the first user turn."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [copy(m) for m in messages if m["role"] != "system"]
    if system and rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    elif system:
        rest.insert(0, Message(role="user", content=system))
    return rest
