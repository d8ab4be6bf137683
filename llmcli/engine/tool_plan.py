"""What a request or a command line asks of tools, for the model: the tools, the
choice ("none", "auto", "required" or one function's name), whether several calls may
come at once, the grammar that makes the calls valid, and the messages a template that
knows no tools is given instead. Shared by `serve` and by `run`/`chat`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llmcli.engine.tool_calls import CallFormat, calls_grammar, tools_prompt
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
        return None if self.fmt.native else tools_prompt(self.tools, self.fmt)


def prompt_inputs(
    plan: ToolPlan, messages: list[Message]
) -> tuple[list[Message], list[dict[str, Any]] | None]:
    """The messages and the `tools` the template is given: the tools themselves for a
    template that renders them, else a system message that describes them."""
    described = plan.system_prompt()
    if described is None:
        return messages, plan.tools
    out = [_as_text(m, plan.fmt) for m in messages]
    if out and out[0]["role"] == "system":
        out[0] = Message(role="system", content=f"{out[0]['content']}\n\n{described}")
    else:
        out.insert(0, Message(role="system", content=described))
    return out, None


def _as_text(message: Message, fmt: CallFormat) -> Message:
    """For a template that knows no tools: earlier calls written out in the answer's own
    format, and tool results as user turns."""
    if message["role"] == "tool":
        return Message(
            role="user", content=f"<tool_response>\n{message['content']}\n</tool_response>"
        )
    calls = message.get("tool_calls")
    if not calls:
        return message
    written = [
        f"{fmt.opener}\n"
        + json.dumps(
            {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
            ensure_ascii=False,
        )
        + f"\n{fmt.closer}"
        for c in calls
    ]
    content = "\n".join([message["content"], *written] if message["content"] else written)
    return Message(role="assistant", content=content)
