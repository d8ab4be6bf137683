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
    drop: Sequence[int] = (),
) -> None:
    """Print a table; columns listed in `numeric` are right-aligned.

    On a terminal too narrow for every column, the columns in `drop` go, in that order,
    until the rest fits, and a note says which (a cell cut to "Q…" tells nothing); the
    first column then wraps rather than being cut. Piped output always has them all.
    """
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

    target = console.stderr_console() if to_stderr else console.stdout_console()
    kept = fitting_columns(headers, rows, target.width, drop)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i in kept:
        # Columns that may go keep whole cells, and the first folds if it must; without,
        # Rich shares out the width (the first column whole, the others wrapped).
        no_wrap = i != 0 if drop else i == 0
        table.add_column(
            headers[i],
            justify="right" if i in numeric else "left",
            no_wrap=no_wrap,
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    target.print(table)
    hidden = [headers[i] for i in range(len(headers)) if i not in kept]
    if hidden:
        console.notice(
            f"{', '.join(hidden)} left out to fit {target.width} columns "
            "(a wider terminal, or piped output, shows them)"
        )


# Between two columns of the table: padding on both sides and the separator.
_GAP = 3


def fitting_columns(
    headers: Sequence[str], rows: Sequence[Sequence[str]], width: int, drop: Sequence[int]
) -> list[int]:
    """The columns that fit `width` once those in `drop` go, in order, as needed."""
    natural = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    kept = list(range(len(headers)))
    for i in drop:
        if sum(natural[k] for k in kept) + _GAP * (len(kept) - 1) <= width:
            break
        kept.remove(i)
    return kept


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
