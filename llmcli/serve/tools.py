"""OpenAI's tools on chat completions: `tools`, `tool_choice` and `parallel_tool_calls`
checked into a `ToolPlan`, the tool history of a conversation (assistant `tool_calls`,
`tool` messages), and the calls of an answer as OpenAI shapes them, whole or streamed.

What the model writes and how it is constrained lives in engine.tool_calls; this is the
request and the response. "none" renders the tools (as llama.cpp does) but takes no call
from the answer: its text is all content. "auto" generates freely, with a lazy grammar
that makes a call valid once it opens. "required" and a named function constrain the
whole answer to calls with a grammar (thinking is switched off for them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmcli.engine.grammar import check_grammar
from llmcli.engine.reasoning import CLOSE_TAG
from llmcli.engine.tool_calls import CallEvent, CallFormat, CallParser, ToolCall, parse_calls
from llmcli.engine.tool_plan import ToolPlan, prompt_inputs
from llmcli.engine.types import FinishReason, Message
from llmcli.errors import LlmcliError
from llmcli.serve import protocol as p

if TYPE_CHECKING:
    from llmcli.serve.state import ServerState

# Where the server reads them; defined beside the engine, for `run` and `chat` too.
__all__ = ["ToolPlan", "prompt_inputs"]

# OpenAI's rule for function names.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def plan_from(data: dict[str, Any], fmt: CallFormat) -> ToolPlan | None:
    """The request's tools, checked; None when it gives none."""
    raw, choice = data.get("tools"), data.get("tool_choice")
    parallel = p.boolean_field(data, "parallel_tool_calls")
    if raw in (None, []):
        if choice not in (None, "none", "auto"):
            raise p.bad("'tool_choice' needs 'tools' to choose from", "tool_choice")
        return None
    if not isinstance(raw, list):
        raise p.bad("'tools' must be a list of function tools", "tools")
    tools = [_tool(i, t) for i, t in enumerate(raw)]
    names = [t["function"]["name"] for t in tools]
    for name in names:
        if names.count(name) > 1:
            raise p.bad(f"'tools' names the function '{name}' more than once", "tools")
    return ToolPlan(tools, _choice(choice, names), parallel is not False, fmt)


def _tool(i: int, tool: Any) -> dict[str, Any]:
    where = f"tools[{i}]"
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise p.bad(f"'{where}' must be an object of type 'function'", "tools")
    function = tool.get("function")
    if not isinstance(function, dict):
        raise p.bad(f"'{where}.function' must be an object", "tools")
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise p.bad(f"'{where}.function.name' must be 1 to 64 letters, digits, _ or -", "tools")
    description = function.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise p.bad(f"'{where}.function.description' must be a string", "tools")
        p.checked_text(description, f"{where}.function.description")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise p.bad(f"'{where}.function.parameters' must be a JSON schema object", "tools")
    # Accepted either way: where a grammar applies, every call follows its schema.
    p.boolean_field(function, "strict", f"{where}.function")
    kept = {k: function[k] for k in ("name", "description", "parameters") if k in function}
    return {"type": "function", "function": kept}


def _choice(choice: Any, names: list[str]) -> str:
    if choice is None:
        return "auto"
    if choice in ("none", "auto", "required"):
        return str(choice)
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name in names:
            return name
        raise p.bad(
            f"'tool_choice' names the function {name!r}, which is not in 'tools'", "tool_choice"
        )
    raise p.bad(
        "'tool_choice' must be 'none', 'auto', 'required' or "
        '{"type": "function", "function": {"name": ...}}',
        "tool_choice",
    )


def sampling_grammar(
    state: ServerState, plan: ToolPlan | None, prompt: list[int]
) -> tuple[str, str | None] | None:
    """The grammar of the answer's calls, checked against the model's vocabulary, and
    its lazy trigger ("auto": the grammar applies once a call opens, after any thinking
    the prompt opened); None when no grammar applies."""
    if plan is None:
        return None
    try:
        gbnf = plan.grammar()
        if gbnf is not None:
            check_grammar(state.model_path, gbnf)
    except LlmcliError as exc:
        raise p.bad(
            f"the tools' parameters cannot be turned into a grammar: {exc}", "tools"
        ) from None
    if gbnf is None or plan.forced:
        return None if gbnf is None else (gbnf, None)
    fmt = state.model.tokenizer.reasoning
    splitter = state.model.splitter(prompt)
    thinking = (
        fmt is not None and fmt.style == "tags" and splitter is not None and splitter.thinking
    )
    return gbnf, plan.fmt.lazy_trigger(after=CLOSE_TAG if thinking else None)


def finish(reason: FinishReason | None, called: bool) -> str | None:
    """OpenAI's finish_reason: "tool_calls" for an answer that called and ended itself."""
    return "tool_calls" if called and reason == "stop" else p.finish(reason)


# -- history -------------------------------------------------------------------------------


def history_fields(i: int, item: dict[str, Any], message: Message) -> Message:
    """An assistant message's `tool_calls` (arguments parsed for the template) and a tool
    message's `tool_call_id`, added to the message read from `item`."""
    if item.get("role") == "tool":
        ident = item.get("tool_call_id")
        if not isinstance(ident, str) or not ident:
            raise p.bad(f"messages[{i}] (a tool result) needs a 'tool_call_id'", "messages")
        message["tool_call_id"] = ident
        return message
    calls = item.get("tool_calls")
    if calls in (None, []):
        return message
    if not isinstance(calls, list):
        raise p.bad(f"'messages[{i}].tool_calls' must be a list", "messages")
    message["tool_calls"] = [
        _history_call(f"messages[{i}].tool_calls[{j}]", c) for j, c in enumerate(calls)
    ]
    return message


def _history_call(where: str, call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(function, dict) or not isinstance(name, str) or not name:
        raise p.bad(f"'{where}' must be a function call with a name", "messages")
    arguments = function.get("arguments", "{}")
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise p.bad(f"'{where}.function.arguments' must be a JSON object", "messages")
    p.checked_text(json.dumps(parsed, ensure_ascii=False), f"{where}.function.arguments")
    ident = call.get("id")
    return {
        "id": ident if isinstance(ident, str) else "",
        "type": "function",
        "function": {"name": p.checked_text(name, where), "arguments": parsed},
    }


# -- the answer ----------------------------------------------------------------------------


def answer_message(text: str, plan: ToolPlan | None) -> tuple[dict[str, Any], bool]:
    """The assistant message's content and tool calls for a whole answer, and whether it
    called (finish_reason "tool_calls")."""
    if plan is None or plan.choice == "none":
        return {"content": text}, False
    content, calls = parse_calls(text, plan.fmt, limit=plan.limit)
    if not calls:
        return {"content": content}, False
    return {"content": content or None, "tool_calls": [c.as_json() for c in calls]}, True


@dataclass
class StreamedCalls:
    """Answer text as stream deltas: content as it comes, each call once it is whole
    (its id, type and name, then its arguments), nothing of the call markup."""

    plan: ToolPlan
    parser: CallParser = field(init=False)

    def __post_init__(self) -> None:
        self.parser = CallParser(self.plan.fmt, limit=self.plan.limit)

    @property
    def called(self) -> bool:
        return bool(self.parser.calls)

    def feed(self, text: str) -> list[dict[str, Any]]:
        return self._deltas(self.parser.feed(text))

    def flush(self) -> list[dict[str, Any]]:
        return self._deltas(self.parser.flush())

    def _deltas(self, events: list[CallEvent]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for kind, value in events:
            if isinstance(value, ToolCall):
                index = self.parser.calls.index(value)
                head = {"index": index, "id": value.id, "type": "function"}
                out.append(
                    {"tool_calls": [{**head, "function": {"name": value.name, "arguments": ""}}]}
                )
                out.append(
                    {"tool_calls": [{"index": index, "function": {"arguments": value.arguments}}]}
                )
            elif kind == "content":
                out.append({"content": value})
        return out
