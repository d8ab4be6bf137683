"""The tools of one `run` or `chat`: gathered from --tool-file and --mcp, with what
the command line says of them (--tool-choice, --max-steps, --yes, --tool-timeout). A
context manager: leaving it ends every MCP server it started, Ctrl-C included."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from llmcli.engine.tool_calls import CallFormat, ToolCall
from llmcli.engine.tool_plan import ToolPlan
from llmcli.errors import UsageError
from llmcli.tools.approval import DECLINED, Approval
from llmcli.tools.base import Tool, ToolFailed, by_name
from llmcli.tools.mcp_client import McpServer
from llmcli.tools.tool_process import ToolProcess
from llmcli.ui import console, tool_view

CHOICES = ("auto", "none", "required")


@dataclass
class CallRecord:
    """One call the model made, and what came of it."""

    id: str
    name: str
    arguments: dict[str, Any]
    result: str
    # "ok", "error" (the tool failed: its error text is the result) or "declined".
    status: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "arguments": self.arguments,
            "result": self.result,
            "status": self.status,
        }


@dataclass
class Toolbox:
    tools: dict[str, Tool]
    choice: str
    max_steps: int
    timeout: float
    approval: Approval
    servers: list[McpServer] = field(default_factory=list)
    # The child processes that run the tool files' functions.
    processes: list[ToolProcess] = field(default_factory=list)
    # Whether the user was told that the tools go in a system message.
    noted: bool = False

    def __enter__(self) -> Toolbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for server in self.servers:
            server.close()
        self.servers = []
        for process in self.processes:
            process.close()
        self.processes = []

    def plan(self, fmt: CallFormat, choice: str | None = None) -> ToolPlan:
        tools = [t.as_json() for t in self.tools.values()]
        return ToolPlan(tools, choice or self.choice, parallel=True, fmt=fmt)

    def lines(self) -> list[str]:
        """One line per tool, for /tools."""
        return [
            f"{t.name}: {t.description or '(no description)'} [{t.source}]"
            for t in self.tools.values()
        ]

    def run(self, call: ToolCall) -> CallRecord:
        """Ask, then run the call; a tool that fails gives its error as the result."""
        import json

        arguments = json.loads(call.arguments)
        tool = self.tools.get(call.name)
        if tool is None:
            # Only free text can name a tool that does not exist (the grammar cannot).
            text = f"error: there is no tool named {call.name!r}"
            tool_view.show_call(call.name, call.arguments)
            tool_view.show_result(call.name, text, failed=True)
            return CallRecord(call.id, call.name, arguments, text, "error")
        if not self.approval.approve(call.name, call.arguments):
            tool_view.show_result(call.name, DECLINED, failed=True)
            return CallRecord(call.id, call.name, arguments, DECLINED, "declined")
        try:
            text, status = tool.call(arguments, self.timeout), "ok"
        except ToolFailed as failed:
            text, status = str(failed), "error"
        tool_view.show_result(call.name, text, failed=status != "ok")
        return CallRecord(call.id, call.name, arguments, text, status)


def open_toolbox(
    files: Sequence[Path],
    servers: Sequence[str],
    *,
    choice: str,
    max_steps: int,
    timeout: float,
    yes: bool,
) -> Toolbox | None:
    """The tools the command line names, or None when it names none. UsageError for a
    file that gives no tool or a --tool-choice naming no tool; ToolServerError for an
    MCP server that cannot start (those started already are ended)."""
    if not files and not servers:
        if choice not in ("auto", "none"):
            raise UsageError("--tool-choice needs tools (--tool-file or --mcp)")
        return None
    from llmcli.tools import python_file

    gathered: list[Tool] = []
    box = Toolbox({}, choice, max_steps, timeout, Approval(yes=yes))
    for path in files:
        loaded = python_file.load(path)
        for note in loaded.notes:
            console.notice(note)
        gathered += loaded.tools
        box.processes.append(loaded.process)
    if servers:
        _exit_on_sigterm()
    try:
        for spec in servers:
            server = McpServer(spec)
            listed = server.start()
            box.servers.append(server)
            gathered += listed
        box.tools = by_name(gathered)
        if not box.tools:
            raise UsageError("the MCP servers given offer no tool")
        if choice not in CHOICES and choice not in box.tools:
            raise UsageError(
                f"--tool-choice {choice!r} is neither auto, none, required nor a tool's name "
                f"(tools: {', '.join(box.tools)})"
            )
    except BaseException:
        box.close()
        raise
    return box


def _exit_on_sigterm() -> None:
    """SIGTERM (`kill`, `timeout`) unwinds like Ctrl-C instead of ending the process on
    the spot, so that the MCP servers' child processes are ended on the way out."""
    import signal
    import sys
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
