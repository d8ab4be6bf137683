"""One tool, wherever it comes from: a name, a description, a JSON schema of its
arguments, and a call that returns text for the model."""

from __future__ import annotations

import threading
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


def in_thread(work: Callable[[], str], timeout: float, name: str) -> str:
    """Run `work` in a thread of its own and wait at most `timeout` seconds. A Python
    function cannot be stopped from outside: one that hangs is left running (a daemon
    thread, ended with the process) and the model reads that it timed out."""
    outcome: list[str] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # the model reads what went wrong, whatever it was
            failure.append(exc)

    thread = threading.Thread(target=target, name=f"tool {name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ToolFailed(f"error: the tool {name} did not finish within {timeout:g} s")
    if failure:
        exc = failure[0]
        raise ToolFailed(f"error: {type(exc).__name__}: {exc}")
    return outcome[0]
