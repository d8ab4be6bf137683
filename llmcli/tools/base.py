"""One tool, wherever it comes from: a name, a description, a JSON schema of its
arguments, and a call that returns text for the model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmcli.errors import UsageError


class ToolFailed(Exception):
    """A call that did not give a result: its text goes back to the model instead."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    # Runs the call with the arguments the model gave (checked against `parameters` by
    # the grammar) within `timeout` seconds; returns the result as text; raises
    # ToolFailed with what the model should read instead.
    call: Callable[[dict[str, Any], float], str]
    # Where it comes from, for /tools and the display: a file, or an MCP server.
    source: str

    def as_json(self) -> dict[str, Any]:
        """OpenAI's shape of a function tool, which chat templates render."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}


def by_name(tools: Sequence[Tool]) -> dict[str, Tool]:
    """The tools by name; UsageError when two sources give the same name."""
    named: dict[str, Tool] = {}
    for tool in tools:
        if tool.name in named:
            raise UsageError(
                f"two tools are named {tool.name!r} ({named[tool.name].source} and "
                f"{tool.source}): rename one"
            )
        named[tool.name] = tool
    return named
