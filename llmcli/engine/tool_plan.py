"""What a request or a command line asks of tools, for the model: the tools, the
choice ("none", "auto", "required" or one function's name), whether several calls may
come at once, the grammar that makes the calls valid, and the messages a template that
knows no tools is given instead. Shared by `serve` and by `run`/`chat`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llmcli.engine.tool_calls import CallFormat, calls_grammar, tools_prompt, write_calls
from llmcli.engine.types import Message


@dataclass(frozen=True)
class ToolPlan:
    tools: list[dict[str, Any]]
    # "none", "auto", "required", or the name of the one function to call.
    choice: str
    parallel: bool
    fmt: CallFormat

    @property
    def forced(self) -> bool:
        """Whether the answer must be calls (a grammar from its first token)."""
        return self.choice not in ("none", "auto")

    @property
    def limit(self) -> int | None:
        return None if self.parallel and self.fmt.several else 1

    def grammar(self) -> str | None:
        """The GBNF of the calls this answer may make; None for "none"."""
        if self.choice == "none":
            return None
        tools = self.tools
        if self.forced and self.choice != "required":
            tools = [t for t in tools if t["function"]["name"] == self.choice]
        several = self.parallel and self.choice in ("auto", "required")
        return calls_grammar(tools, self.fmt, several=several)

    def system_prompt(self) -> str | None:
        """The tools described in a system message, for a template that cannot."""
        return tools_prompt(self.tools, self.fmt) if self.fmt.described else None


def prompt_inputs(
    plan: ToolPlan, messages: list[Message]
) -> tuple[list[Message], list[dict[str, Any]] | None]:
    """The messages and the `tools` the template is given: the tools themselves for a
    template that renders them, else a system message that describes them; earlier calls
    and results written out as text where the template would not write them."""
    fmt = plan.fmt
    out = messages if fmt.native and fmt.writes_calls else [_as_text(m, fmt) for m in messages]
    described = plan.system_prompt()
    if described is None:
        return out, _for_template(plan.tools, fmt)
    out = list(out)
    if out and out[0]["role"] == "system":
        out[0] = Message(role="system", content=f"{out[0]['content']}\n\n{described}")
    else:
        out.insert(0, Message(role="system", content=described))
    return out, None


def _as_text(message: Message, fmt: CallFormat) -> Message:
    """Earlier calls written out in the answer's own format; for a template that knows
    no tools, tool results as user turns too."""
    if message["role"] == "tool" and not fmt.native:
        return Message(
            role="user", content=f"<tool_response>\n{message['content']}\n</tool_response>"
        )
    calls = message.get("tool_calls")
    if not calls:
        return message
    written = write_calls(
        [(c["function"]["name"], _arguments(c["function"]["arguments"])) for c in calls], fmt
    )
    content = "\n".join([message["content"], written] if message["content"] else [written])
    return Message(role="assistant", content=content)


def _arguments(value: Any) -> dict[str, Any]:
    parsed = json.loads(value) if isinstance(value, str) else value
    return parsed if isinstance(parsed, dict) else {}


def _for_template(tools: list[dict[str, Any]], fmt: CallFormat) -> list[dict[str, Any]]:
    """gpt-oss's template adds each tool's description to text, and fails on a tool that
    has none (OpenAI's API allows that): it gets an empty one."""
    if fmt.shape != "harmony":
        return tools
    return [
        {**t, "function": {"description": "", **t["function"]}} if "function" in t else t
        for t in tools
    ]
