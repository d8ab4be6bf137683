"""Whether a call may run: --yes runs every call; on a terminal each call is asked
about (y, n, or a: this tool's calls from now on); with neither, a call is refused
with ToolNotApprovedError and nothing runs."""

from __future__ import annotations

from llmcli import terminal
from llmcli.errors import ToolNotApprovedError
from llmcli.ui import tool_view

DECLINED = "the user declined to run this call"


class Approval:
    def __init__(self, *, yes: bool) -> None:
        self.yes = yes
        self._always: set[str] = set()

    def approve(self, name: str, arguments: str) -> bool:
        """True to run the call, False when the user said no. Raises
        ToolNotApprovedError when nobody can be asked."""
        if self.yes or name in self._always:
            tool_view.show_call(name, arguments)
            return True
        term = terminal.current()
        if not (term.stdin_isatty and term.stderr_isatty):
            raise ToolNotApprovedError(
                f"the model called the tool {name}, and there is no terminal to ask "
                "whether it may run; nothing ran",
                hint="give --yes to run tool calls without asking",
            )
        answer = tool_view.ask(name, arguments)
        if answer == "a":
            self._always.add(name)
        return answer in ("y", "a")
