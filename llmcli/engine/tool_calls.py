"""Tool calls in a model's answer: the format a family writes them in, the parser that
finds them as the text streams, and the grammar that makes them valid by construction.

A family is one `CallFormat`: the text that opens a call and the text that closes it,
with a JSON object `{"name": ..., "arguments": {...}}` between them (Hermes, Qwen 2.5/3
and the generic prompt for templates that know no tools all write calls this way).
Pure text and data: nothing here evaluates a model.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from llmcli.engine.grammar import schema_to_gbnf


@dataclass(frozen=True)
class CallFormat:
    name: str
    opener: str
    closer: str
    # Whether the model's own template renders `tools` and writes calls in this format;
    # False: the tools are described by `tools_prompt` in a system message instead.
    native: bool

    def lazy_trigger(self, after: str | None = None) -> str:
        """The regular expression (matched against all the text generated so far) that
        starts a lazy grammar at the opener; `after`: only once this text has come (the
        end of thinking the prompt opened), so that a call mentioned while thinking is
        not taken for one."""
        lead = f"[\\s\\S]*?{re.escape(after)}" if after else ""
        return f"{lead}[\\s\\S]*?({re.escape(self.opener)})[\\s\\S]*"


HERMES = CallFormat("hermes", "<tool_call>", "</tool_call>", native=True)
GENERIC = CallFormat("generic", "<tool_call>", "</tool_call>", native=False)


def call_format(template: str | None) -> CallFormat:
    """The format of a model's calls, from its chat template's source. A template that
    renders `tools` and writes `<tool_call>` is native Hermes/Qwen; any other (no tools,
    or another family's format) gets the tools in a system prompt, in the same format."""
    source = template or ""
    if "tools" in source and HERMES.opener in source:
        return HERMES
    return GENERIC


def tools_prompt(tools: Sequence[dict[str, Any]], fmt: CallFormat) -> str:
    """The system text that describes the tools to a model whose template cannot."""
    listed = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        f"The functions available, as JSON signatures:\n{listed}\n\n"
        "To call a function, answer with a JSON object holding its name and arguments "
        f"between {fmt.opener} and {fmt.closer}, one call each:\n"
        f'{fmt.opener}\n{{"name": <function-name>, "arguments": <args-json-object>}}\n'
        f"{fmt.closer}"
    )


# -- parsing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # a JSON object, as text
    id: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


CallEvent = tuple[Literal["content"], str] | tuple[Literal["call"], ToolCall]


def read_call(body: str) -> ToolCall | None:
    """The call a block holds, or None when it is no valid call."""
    try:
        # strict=False: a raw newline inside a string is read as one, not refused.
        data = json.loads(body, strict=False)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) - {"name", "arguments"}:
        return None
    name, arguments = data.get("name"), data.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments, strict=False)
        except ValueError:
            return None
    if not isinstance(name, str) or not name or not isinstance(arguments, dict):
        return None
    return ToolCall(name, json.dumps(arguments, ensure_ascii=False), new_call_id())


class CallParser:
    """Finds calls in answer text fed piece by piece. Text that could still be the start
    of a call is held back; a block that holds no valid call is given back as content.
    Whitespace before and between calls is dropped; `limit` calls at most are taken
    (later blocks are content)."""

    def __init__(self, fmt: CallFormat, *, limit: int | None = None) -> None:
        self._fmt = fmt
        self._limit = limit
        self._pending = ""
        self._inside = False
        self._space = ""  # whitespace held until it proves to be content
        self.calls: list[ToolCall] = []

    def feed(self, text: str) -> list[CallEvent]:
        self._pending += text
        out: list[CallEvent] = []
        fmt = self._fmt
        while True:
            if self._inside:
                end = self._pending.find(fmt.closer)
                if end < 0:
                    return out
                body = self._pending[:end]
                self._pending = self._pending[end + len(fmt.closer) :]
                self._inside = False
                self._block(body, out)
                continue
            if self._limit is not None and len(self.calls) >= self._limit:
                self._content(self._pending, out)
                self._pending = ""
                return out
            start = self._pending.find(fmt.opener)
            if start >= 0:
                self._content(self._pending[:start], out)
                self._pending = self._pending[start + len(fmt.opener) :]
                self._inside = True
                continue
            keep = _partial_suffix(self._pending, fmt.opener)
            self._content(self._pending[: len(self._pending) - keep], out)
            self._pending = self._pending[len(self._pending) - keep :]
            return out

    def flush(self) -> list[CallEvent]:
        """The end of the answer: an unclosed call counts if its JSON is whole."""
        out: list[CallEvent] = []
        if self._inside:
            self._inside = False
            self._block(self._pending, out, closed=False)
        else:
            self._content(self._pending, out)
        self._pending = ""
        if self._space and not self.calls:
            out.append(("content", self._space))
        self._space = ""
        return out

    def _block(self, body: str, out: list[CallEvent], *, closed: bool = True) -> None:
        call = read_call(body)
        if call is None:
            fmt = self._fmt
            self._content(fmt.opener + body + (fmt.closer if closed else ""), out)
            return
        self._space = ""
        self.calls.append(call)
        out.append(("call", call))

    def _content(self, text: str, out: list[CallEvent]) -> None:
        # Trailing whitespace waits: dropped if a call comes next, however the text
        # was cut into pieces.
        body = text.rstrip()
        if body:
            out.append(("content", self._space + body))
            self._space = ""
        self._space += text[len(body) :]


def parse_calls(
    text: str, fmt: CallFormat, *, limit: int | None = None
) -> tuple[str, list[ToolCall]]:
    """The text outside the calls, and the calls, of a whole answer."""
    parser = CallParser(fmt, limit=limit)
    events = parser.feed(text) + parser.flush()
    content = "".join(e[1] for e in events if e[0] == "content")
    return content, parser.calls


def _partial_suffix(text: str, marker: str) -> int:
    """How many characters at the end of `text` could begin `marker`."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


# -- grammar -------------------------------------------------------------------------------


def call_schema(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A JSON schema of one call: {"name": one tool's name, "arguments": its parameters}."""
    alternatives = []
    for tool in tools:
        function = tool["function"]
        alternatives.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": function["name"]},
                    "arguments": function.get("parameters") or {"type": "object"},
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


_RULE = re.compile(r"^([A-Za-z0-9-]+)\s*::=", re.MULTILINE)
_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|[A-Za-z0-9-]+|\s+|.')


def _prefixed(gbnf: str, prefix: str) -> str:
    """The grammar with every rule renamed `prefix` + name (literals left as they are)."""
    names = set(_RULE.findall(gbnf))
    return "".join(
        prefix + tok if tok in names else tok for tok in (m.group(0) for m in _TOKEN.finditer(gbnf))
    )


def calls_grammar(tools: Sequence[dict[str, Any]], fmt: CallFormat, *, several: bool) -> str:
    """GBNF for the calls of an answer: one (or, with `several`, one or more) opener,
    JSON call, closer. Raises UsageError when a tool's parameters cannot be converted."""
    inner = _prefixed(schema_to_gbnf(call_schema(tools)), "tc-")
    call = f"{json.dumps(fmt.opener + chr(10))} tc-root {json.dumps(chr(10) + fmt.closer)}"
    calls = 'call ("\\n" call)*' if several else "call"
    return f"root ::= {calls}\ncall ::= {call}\n{inner}"
