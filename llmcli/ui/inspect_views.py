"""Views for looking inside a model: tokens in colour, a similarity heat map, and
next-token probabilities as a bar chart. Plain, line-oriented text when piped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmcli import terminal
from llmcli.ui import console

if TYPE_CHECKING:
    from rich.text import Text

    from llmcli.engine.probe import Step
    from llmcli.engine.vocab import Span, Token

# Background colours that alternate from token to token. Basic ANSI colours, so that
# terminals with few colours still tell neighbours apart.
_TOKEN_STYLES = ("white on blue", "black on green", "white on magenta", "black on yellow")
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"})


def escape(text: str) -> str:
    """One-line form of a token's text for line-based output: \\n, \\t, \\r, \\\\."""
    return text.translate(_ESCAPES)


def shorten(text: str, width: int) -> str:
    """The start of a text on one line, at most `width` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def tail(text: str, width: int) -> str:
    """The end of a text on one line, at most `width` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else "…" + flat[-(width - 1) :]


# -- tokenize ------------------------------------------------------------------------------


def tokens_plain(tokens: Sequence[Token]) -> str:
    """`id<TAB>text` per token, text escaped so that every token is one line."""
    return "".join(f"{t.id}\t{escape(t.text)}\n" for t in tokens)


def render_tokens(spans: Sequence[Span]) -> None:
    """The text with each token on its own background colour, then the ids."""
    from rich.text import Text

    styled = terminal.current().stdout_styled
    text = Text()
    for i, span in enumerate(spans):
        shown = span.text.replace("\n", "↵\n")
        control = all(t.control for t in span.tokens)
        if styled:
            style = _TOKEN_STYLES[i % len(_TOKEN_STYLES)] + (" bold" if control else "")
            text.append(shown, style=style)
        else:  # no colour: a thin bar marks where each token starts
            text.append("│" + shown)
    ids = " ".join(str(t.id) for span in spans for t in span.tokens)
    out = console.stdout_console()
    out.print(text, soft_wrap=True)
    out.print()
    out.print(Text("ids: ", style="dim") + Text(ids), soft_wrap=True)


def token_summary(n_tokens: int, n_chars: int) -> str:
    per = f"{n_chars / n_tokens:.2f}" if n_tokens else "–"
    return f"{n_tokens} tokens · {n_chars} characters · {per} characters per token"


# -- similarity ----------------------------------------------------------------------------


def matrix_tsv(texts: Sequence[str], matrix: Sequence[Sequence[float]]) -> str:
    """A header row of the texts, then one row per text: its label and the values."""
    labels = [escape(t) for t in texts]
    lines = ["\t" + "\t".join(labels)]
    for label, row in zip(labels, matrix, strict=True):
        lines.append(label + "\t" + "\t".join(f"{v:.4f}" for v in row))
    return "\n".join(lines) + "\n"


def _heat_style(value: float, low: float, high: float) -> str:
    """Blue for the least alike pair in the table, red for the most alike."""
    share = 1.0 if high <= low else max(0.0, min(1.0, (value - low) / (high - low)))
    red = int(40 + 180 * share)
    blue = int(200 - 160 * share)
    return f"white on rgb({red},50,{blue})"


def render_heatmap(texts: Sequence[str], matrix: Sequence[Sequence[float]]) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    off_diagonal = [v for i, row in enumerate(matrix) for j, v in enumerate(row) if i != j]
    low = min(off_diagonal, default=0.0)
    high = max(off_diagonal, default=1.0)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("text", overflow="ellipsis", max_width=48, no_wrap=True)
    for i in range(len(texts)):
        table.add_column(str(i + 1), justify="center")
    for i, (text, row) in enumerate(zip(texts, matrix, strict=True)):
        cells: list[Text | str] = [str(i + 1), shorten(text, 48)]
        for j, value in enumerate(row):
            style = "dim" if i == j else _heat_style(value, low, high)
            cells.append(Text(f" {value:.3f} ", style=style))
        table.add_row(*cells)
    out = console.stdout_console()
    out.print(table)
    out.print(
        Text(
            "cosine similarity: 1 = pointing the same way; higher = closer in meaning "
            "(as this model sees it)",
            style="dim",
        )
    )


# -- next token ----------------------------------------------------------------------------

_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(share: float, width: int) -> str:
    """A horizontal bar `share` (0..1) of `width` cells, in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, share)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(width)


def steps_tsv(steps: Sequence[Step]) -> str:
    lines = ["step\trank\tid\tprobability\ttoken"]
    for n, step in enumerate(steps, 1):
        for rank, c in enumerate(step.candidates, 1):
            token = c.token
            lines.append(f"{n}\t{rank}\t{token.id}\t{c.probability:.6f}\t{escape(token.text)}")
    return "\n".join(lines) + "\n"


def render_steps(steps: Sequence[Step], prompt_tail: str) -> None:
    from rich.table import Table
    from rich.text import Text

    out = console.stdout_console()
    before = prompt_tail
    for n, step in enumerate(steps, 1):
        if len(steps) > 1:
            out.print(Text(f"step {n}", style="bold") + Text(f" after {tail(before, 50)!r}"))
        table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1))
        table.add_column(justify="right")
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(justify="right", style="dim")
        for rank, c in enumerate(step.candidates):
            token_style = "bold" if rank == 0 else ""
            table.add_row(
                f"{c.probability * 100:5.1f}%",
                Text(bar(c.probability, 30), style="cyan"),
                Text(repr(c.token.text), style=token_style),
                str(c.token.id),
            )
        out.print(table)
        if len(steps) > 1:
            out.print()
        before = prompt_tail + step.text_so_far
    if len(steps) > 1:
        out.print(Text("greedy continuation: ", style="dim") + Text(steps[-1].text_so_far))
