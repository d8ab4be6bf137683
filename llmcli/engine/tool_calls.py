"""Tool calls in a model's answer: the format a family writes them in, the parser that
finds them as the text streams, and the grammar that makes them valid by construction.

A family is one `CallFormat`: the text that opens a call, the text that closes it (or
none: the call runs to the end of the answer), and the shape between them:
- "object": `{"name": ..., "arguments": {...}}` between <tool_call> and </tool_call>
  (Hermes, Qwen 2.5/3, and the generic prompt for templates that know no tools); Llama
  3.1-3.3 write the object alone, with "parameters" for "arguments";
- "list": [TOOL_CALLS] and a JSON list of such objects (Mistral v3, Nemo);
- "name-args": [TOOL_CALLS]NAME[ARGS]{...} per call (Mistral Small 3.2, Devstral);
- "deepseek": DeepSeek R1's <｜tool▁calls▁begin｜> block of
  <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME and a ```json fence per call;
- "harmony": gpt-oss's `to=functions.NAME ... <|message|>{...}<|call|>` message header
  (the reasoning splitter hands such a message on from its `to=` on).
Granite 3 writes `<|tool_call|>` and a JSON list ("list"); SmolLM3 writes <tool_call>.
Pure text and data: nothing here evaluates a model.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from llmcli.engine.grammar import schema_to_gbnf

Shape = Literal["object", "list", "name-args", "deepseek", "harmony"]


@dataclass(frozen=True)
class CallFormat:
    name: str
    opener: str
    # "": the call runs to the end of the answer ("name-args": or to the next opener).
    closer: str
    # Whether the model's own template renders `tools` and writes calls in this format;
    # False: the tools are described by `tools_prompt` in a system message instead.
    native: bool
    shape: Shape = "object"
    arguments_key: str = "arguments"
    # The opener is the start of the call's own JSON (Llama 3's `{"name"`).
    keep_opener: bool = False
    # Whether the template takes several calls in one assistant turn (Llama 3's: one).
    several: bool = True
    # Mistral's templates take call ids of exactly 9 letters and digits.
    id_length: int | None = None
    # Whether the template renders the `tools` it is given (DeepSeek R1's writes calls
    # and results but takes no tools: they are described in a system message).
    takes_tools: bool = True
    # Whether the template writes an assistant turn's `tool_calls` (Granite 3's drops
    # them: they are written into the turn's text in this format instead).
    writes_calls: bool = True

    @property
    def described(self) -> bool:
        """Whether the tools are described in a system message, not by the template."""
        return not (self.native and self.takes_tools)

    def lazy_trigger(self, after: str | None = None) -> str:
        """The regular expression (matched against all the text generated so far) that
        starts a lazy grammar at the opener; `after`: only once this text has come (the
        end of thinking the prompt opened), so that a call mentioned while thinking is
        not taken for one."""
        lead = f"[\\s\\S]*?{re.escape(after)}" if after else ""
        return f"{lead}[\\s\\S]*?({re.escape(self.opener)})[\\s\\S]*"


HERMES = CallFormat("hermes", "<tool_call>", "</tool_call>", native=True)
GENERIC = CallFormat("generic", "<tool_call>", "</tool_call>", native=False)
LLAMA3 = CallFormat(
    "llama3",
    '{"name"',
    "",
    native=True,
    arguments_key="parameters",
    keep_opener=True,
    several=False,
)
MISTRAL = CallFormat("mistral", "[TOOL_CALLS]", "", native=True, shape="list", id_length=9)
MISTRAL_ARGS = CallFormat(
    "mistral-args", "[TOOL_CALLS]", "", native=True, shape="name-args", id_length=9
)
DEEPSEEK_CALLS = ("<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>")
DEEPSEEK_CALL = ("<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>")
DEEPSEEK = CallFormat("deepseek-r1", *DEEPSEEK_CALLS, native=True, shape="deepseek")
# DeepSeek V3.1 writes NAME<｜tool▁sep｜> and bare JSON per call.
DEEPSEEK_V3 = CallFormat("deepseek-v3.1", *DEEPSEEK_CALLS, native=True, shape="deepseek")
# gpt-oss: one call per assistant message (its template renders tool_calls[0] only).
HARMONY = CallFormat(
    "harmony", "to=functions.", "<|call|>", native=True, shape="harmony", several=False
)
GRANITE = CallFormat("granite", "<|tool_call|>", "", native=True, shape="list", writes_calls=False)
# SmolLM3's GGUFs carry a template that knows no tools (Unsloth's edit of the original,
# which described them as "XML tools"): the tools are described as the original did.
SMOLLM3 = CallFormat("smollm3", "<tool_call>", "</tool_call>", native=False)
# Control tokens of these formats, which the decoder must show as text for the parser
# (see Tokenizer.marker_ids).
CALL_MARKERS = (
    "[TOOL_CALLS]",
    "[ARGS]",
    "[CALL_ID]",
    "<|python_tag|>",
    "<|tool_call|>",
    "<|call|>",
    *DEEPSEEK_CALLS,
    *DEEPSEEK_CALL,
)


def call_format(template: str | None) -> CallFormat:
    """The format of a model's calls, from its chat template's source: a template that
    renders `tools` in one of the formats above is native; any other (no tools, or a
    family not known here) gets the tools in a system prompt, in the <tool_call> format."""
    source = template or ""
    if "<|call|>" in source and "<|channel|>" in source:
        return HARMONY
    if DEEPSEEK.opener in source:
        # R1's templates write the call's type ("function") before the separator.
        fmt = DEEPSEEK if "['type'] + '<｜tool▁sep｜>'" in source else DEEPSEEK_V3
        return fmt if "tools" in source else replace(fmt, takes_tools=False)
    if "tools" not in source:
        return SMOLLM3 if "named SmolLM" in source else GENERIC
    if GRANITE.opener in source:
        return GRANITE
    if HERMES.opener in source:
        return HERMES
    if "[TOOL_CALLS]" in source:
        return MISTRAL_ARGS if "[ARGS]" in source else MISTRAL
    if '"parameters": ' in source and "<|start_header_id|>" in source:
        return LLAMA3
    return GENERIC


def tools_prompt(tools: Sequence[dict[str, Any]], fmt: CallFormat) -> str:
    """The system text that describes the tools to a model whose template cannot: in
    the words of the family's own prompts where it has them."""
    listed = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    if fmt.shape == "deepseek":  # as llama.cpp's DeepSeek R1 template describes them
        functions = json.dumps([t["function"] for t in tools], ensure_ascii=False, indent=2)
        example = write_calls([("example_function_name", {"arg1": "some_value"})], fmt)
        return (
            "You can call any of the following function tools to satisfy the user's "
            f"requests: {functions}\n\nExample function tool call syntax:\n\n{example}"
        )
    if fmt is SMOLLM3:  # the "XML Tools" section of SmolLM3's original template
        return (
            "## Tools\n\n### XML Tools\n\nYou may call one or more functions to assist with "
            "the user query.\n\nYou are provided with function signatures within "
            f"<tools></tools> XML tags:\n\n<tools>\n{listed}\n</tools>\n\nFor each function "
            "call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags."
        )
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        f"The functions available, as JSON signatures:\n{listed}\n\n"
        "To call a function, answer with a JSON object holding its name and arguments "
        f"between {fmt.opener} and {fmt.closer}, one call each:\n"
        f'{fmt.opener}\n{{"name": <function-name>, "arguments": <args-json-object>}}\n'
        f"{fmt.closer}"
    )


def write_calls(calls: Sequence[tuple[str, dict[str, Any]]], fmt: CallFormat) -> str:
    """Calls (name, arguments) as `fmt` writes them in an answer, for a template that
    does not write them itself."""
    if fmt.shape == "list":
        listed = [{"name": n, fmt.arguments_key: a} for n, a in calls]
        return fmt.opener + json.dumps(listed, ensure_ascii=False)
    if fmt.shape == "deepseek":
        before, between, after = _named_parts(fmt)
        written = [
            f"{before}{n}{between}{json.dumps(a, ensure_ascii=False)}{after}" for n, a in calls
        ]
        return fmt.opener + _joiner(fmt).join(written) + fmt.closer
    if fmt.shape != "object":
        raise ValueError(f"{fmt.name} calls are written by the template")
    return "\n".join(
        f"{fmt.opener}\n"
        + json.dumps({"name": n, fmt.arguments_key: a}, ensure_ascii=False)
        + f"\n{fmt.closer}"
        for n, a in calls
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


def new_call_id(length: int | None = None) -> str:
    return uuid.uuid4().hex[:length] if length else f"call_{uuid.uuid4().hex[:24]}"


CallEvent = tuple[Literal["content"], str] | tuple[Literal["call"], ToolCall]


def read_call(body: str, fmt: CallFormat = HERMES) -> ToolCall | None:
    """The call a block holds, or None when it is no valid call."""
    try:
        # strict=False: a raw newline inside a string is read as one, not refused.
        data = json.loads(body, strict=False)
    except ValueError:
        return None
    return _call_from(data, fmt)


def read_calls(body: str, fmt: CallFormat) -> list[ToolCall] | None:
    """The calls a block holds in `fmt`'s shape; None when it holds no valid call."""
    if fmt.shape == "object":
        call = read_call(body, fmt)
        return None if call is None else [call]
    if fmt.shape == "list":
        try:
            data = json.loads(body, strict=False)
        except ValueError:
            return None
        if not isinstance(data, list) or not data:
            return None
        calls = [_call_from(item, fmt) for item in data]
        return None if None in calls else [c for c in calls if c is not None]
    if fmt.shape == "deepseek":
        return _deepseek_calls(body, fmt)
    found = (_HARMONY if fmt.shape == "harmony" else _NAME_ARGS).match(body)
    if found is None:
        return None
    call = _named_call(found.group(1), found.group(2), fmt)
    return None if call is None else [call]


_NAME_ARGS = re.compile(r"\s*([A-Za-z0-9_.-]+)(?:\[CALL_ID\][A-Za-z0-9]*)?\[ARGS\]([\s\S]*)$")
# After `to=functions.`: the name, the rest of the header (either order of harmony's
# `<|channel|>commentary` and `to=`, an optional `<|constrain|>json`), the arguments.
_HARMONY = re.compile(
    r"([A-Za-z0-9_.-]+)(?:\s|<\|channel\|>|<\|constrain\|>|[a-z]+)*<\|message\|>([\s\S]*)$"
)
# One DeepSeek call: R1's `function<｜tool▁sep｜>NAME` and ```json fence, or V3.1's
# `NAME<｜tool▁sep｜>` and bare JSON.
_DEEPSEEK = re.compile(
    r"\s*<｜tool▁call▁begin｜>\s*(?:function<｜tool▁sep｜>([^\s<｜]+)|([^\s<｜]+)<｜tool▁sep｜>)"
    r"\s*(?:```(?:json)?\s*([\s\S]*?)\s*```|([\s\S]*?))\s*<｜tool▁call▁end｜>"
)


def _deepseek_calls(body: str, fmt: CallFormat) -> list[ToolCall] | None:
    calls: list[ToolCall] = []
    pos = 0
    while pos < len(body.rstrip()):
        found = _DEEPSEEK.match(body, pos)
        if found is None:
            return None
        call = _named_call(found.group(1) or found.group(2), found.group(3) or found.group(4), fmt)
        if call is None:
            return None
        calls.append(call)
        pos = found.end()
    return calls or None


def _named_call(name: str, arguments_text: str, fmt: CallFormat) -> ToolCall | None:
    try:
        arguments = json.loads(arguments_text, strict=False)
    except ValueError:
        return None
    return _call_from({"name": name, fmt.arguments_key: arguments}, fmt)


def _call_from(data: Any, fmt: CallFormat) -> ToolCall | None:
    key = fmt.arguments_key
    if not isinstance(data, dict) or set(data) - {"name", key, "id"}:
        return None
    name, arguments = data.get("name"), data.get(key, {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments, strict=False)
        except ValueError:
            return None
    if not isinstance(name, str) or not name or not isinstance(arguments, dict):
        return None
    return ToolCall(name, json.dumps(arguments, ensure_ascii=False), new_call_id(fmt.id_length))


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
                if fmt.closer:
                    end = self._pending.find(fmt.closer)
                    after = end + len(fmt.closer)
                elif fmt.shape == "name-args":  # the next call, or the end
                    end = after = self._pending.find(fmt.opener)
                else:
                    return out  # the end of the answer closes it (flush)
                if end < 0:
                    return out
                body = self._pending[:end]
                self._pending = self._pending[after:]
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
                skip = 0 if fmt.keep_opener else len(fmt.opener)
                self._pending = self._pending[start + skip :]
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
        fmt = self._fmt
        calls = read_calls(body, fmt)
        if calls is None:
            opener = "" if fmt.keep_opener else fmt.opener
            self._content(opener + body + (fmt.closer if closed else ""), out)
            return
        self._space = ""
        if self._limit is not None:
            calls = calls[: max(self._limit - len(self.calls), 0)]
        for call in calls:
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


def call_schema(tools: Sequence[dict[str, Any]], key: str = "arguments") -> dict[str, Any]:
    """A JSON schema of one call: {"name": one tool's name, `key`: its parameters}."""
    alternatives = []
    for tool in tools:
        function = tool["function"]
        alternatives.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": function["name"]},
                    key: _parameters(function),
                },
                "required": ["name", key],
                "additionalProperties": False,
            }
        )
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


def _parameters(function: dict[str, Any]) -> dict[str, Any]:
    parameters: dict[str, Any] = function.get("parameters") or {"type": "object"}
    return parameters


_RULE = re.compile(r"^([A-Za-z0-9-]+)\s*::=", re.MULTILINE)
_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|[A-Za-z0-9-]+|\s+|.')


def _prefixed(gbnf: str, prefix: str) -> str:
    """The grammar with every rule renamed `prefix` + name (literals left as they are)."""
    names = set(_RULE.findall(gbnf))
    return "".join(
        prefix + tok if tok in names else tok for tok in (m.group(0) for m in _TOKEN.finditer(gbnf))
    )


# Per-tool grammars: the text before a call's name, between it and its arguments,
# after them.
_NAMED: dict[str, tuple[str, str, str]] = {
    "name-args": ("", "[ARGS]", ""),
    "deepseek": (
        f"{DEEPSEEK_CALL[0]}function{DEEPSEEK_CALL[1]}",
        "\n```json\n",
        f"\n```{DEEPSEEK_CALL[2]}",
    ),
    "harmony": ("", " <|constrain|>json<|message|>", ""),
}


def _named_parts(fmt: CallFormat) -> tuple[str, str, str]:
    if fmt.name == DEEPSEEK_V3.name:
        return DEEPSEEK_CALL[0], DEEPSEEK_CALL[1], DEEPSEEK_CALL[2]
    return _NAMED[fmt.shape]


def _joiner(fmt: CallFormat) -> str:
    """What separates two DeepSeek calls (R1: a newline)."""
    return "" if fmt.name == DEEPSEEK_V3.name else "\n"


def calls_grammar(tools: Sequence[dict[str, Any]], fmt: CallFormat, *, several: bool) -> str:
    """GBNF for the calls of an answer in `fmt`: one (or, with `several`, one or more)
    calls. Raises UsageError when a tool's parameters cannot be converted."""
    several = several and fmt.several
    if fmt.shape in _NAMED:
        return _named_grammar(tools, fmt, several=several)
    inner = _prefixed(schema_to_gbnf(call_schema(tools, fmt.arguments_key)), "tc-")
    if fmt.keep_opener:  # the call is its JSON alone
        return f"root ::= tc-root\n{inner}"
    if fmt.shape == "list":
        listed = 'tc-root ("," " "? tc-root)*' if several else "tc-root"
        return f'root ::= {json.dumps(fmt.opener)} "[" {listed} "]"\n{inner}'
    call = f"{json.dumps(fmt.opener + chr(10))} tc-root {json.dumps(chr(10) + fmt.closer)}"
    calls = 'call ("\\n" call)*' if several else "call"
    return f"root ::= {calls}\ncall ::= {call}\n{inner}"


def _named_grammar(tools: Sequence[dict[str, Any]], fmt: CallFormat, *, several: bool) -> str:
    """GBNF of formats that write a call's name as text and its arguments after it."""
    before, between, after = _named_parts(fmt)
    named, rules = [], []
    for i, tool in enumerate(tools):
        function = tool["function"]
        rules.append(_prefixed(schema_to_gbnf(_parameters(function)), f"t{i}-"))
        named.append(f"{json.dumps(function['name'])} {json.dumps(between)} t{i}-root")
    parts = [json.dumps(before)] if before else []
    parts.append(f"({' | '.join(named)})")
    parts += [json.dumps(after)] if after else []
    opener = json.dumps(fmt.opener)
    if fmt.shape == "deepseek":
        joiner = _joiner(fmt)
        calls = (
            "call" if not several else f"call ({json.dumps(joiner)} call)*" if joiner else "call+"
        )
        head = f"root ::= {opener} {calls} {json.dumps(fmt.closer)}"
    elif fmt.shape == "harmony":
        # Lazily the grammar starts at `to=`; from the first token (a required call)
        # the model may write the channel before it.
        head = f'root ::= "<|channel|>commentary "? {opener} call'
    else:
        head = f"root ::= {opener} call ({opener} call)*" if several else f"root ::= {opener} call"
    return "\n".join([head, f"call ::= {' '.join(parts)}", *rules])
