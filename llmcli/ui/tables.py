"""Tables on stdout (`llmcli list`, `llmcli rm` previews on stderr).

On a terminal: a Rich table. Piped: plain space-aligned columns, never wrapped or
truncated, so `grep`/`awk` see whole lines (use `--json` for programs).
"""

from __future__ import annotations

from collections.abc import Sequence

from llmcli import terminal
from llmcli.ui import console


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: Sequence[int] = (),
    to_stderr: bool = False,
) -> None:
    """Print a table; columns listed in `numeric` are right-aligned."""
    term = terminal.current()
    rich_output = term.stderr_isatty if to_stderr else term.stdout_rich
    if not rich_output:
        text = _plain(headers, rows, numeric)
        if to_stderr:
            console.info(text.rstrip("\n"))
        else:
            console.emit_text(text)
        return
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i in numeric else "left", no_wrap=i == 0)
    for row in rows:
        table.add_row(*row)
    target = console.stderr_console() if to_stderr else console.stdout_console()
    target.print(table)


def _plain(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = []
    for row in [headers, *rows]:
        cells = [
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"
