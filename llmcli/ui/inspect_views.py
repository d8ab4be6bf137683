"""Views for looking inside a model: tokens in colour, a similarity heat map, and
next-token probabilities as a bar chart. Plain, line-oriented text when piped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmcli import terminal
from llmcli.ui import console

if TYPE_CHECKING:
    from rich.text import Text

    from llmcli.engine.distribution import Step
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


# -- embed ---------------------------------------------------------------------------------

_LEVELS = "▁▂▃▄▅▆▇█"


def histogram(values: Sequence[float], bins: int) -> str:
    """How the values spread from their lowest to their highest, one block per bin, as
    high as the bin is full (any value in a bin shows at least the lowest block)."""
    low, high = min(values, default=0.0), max(values, default=0.0)
    counts = [0] * bins
    for v in values:
        i = 0 if high <= low else min(bins - 1, int((v - low) / (high - low) * bins))
        counts[i] += 1
    top = max(counts, default=0) or 1
    return "".join(
        " " if c == 0 else _LEVELS[max(0, round(c / top * (len(_LEVELS) - 1)))] for c in counts
    )


def vector_summary(text: str, vector: Sequence[float], width: int) -> list[str]:
    """What a vector is like, in a few lines: its size, length, first values and how its
    values spread. The whole vector is for programs (piped, or --json)."""
    import math

    n = len(vector)
    norm = math.sqrt(math.fsum(v * v for v in vector))
    mean = math.fsum(vector) / n if n else 0.0
    first = " ".join(f"{v:.3f}" for v in vector[:6])
    low, high = min(vector, default=0.0), max(vector, default=0.0)
    bins = max(10, min(40, width - 30))
    return [
        shorten(text, width),
        f"  {n} dimensions · length {norm:.3g} · mean {mean:.3g}",
        f"  first values {first}{' …' if n > 6 else ''}",
        f"  histogram {low:>7.3g} {histogram(vector, bins)} {high:.3g}",
    ]


def render_vector_summaries(texts: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
    from rich.text import Text

    out = console.stdout_console()
    for text, vector in zip(texts, vectors, strict=True):
        lines = vector_summary(text, vector, out.width)
        out.print(Text(lines[0], style="bold"))
        for line in lines[1:]:
            out.print(Text(line))
    out.print(
        Text(
            "the vectors themselves: pipe the output, or --json (one JSON line per text)",
            style="dim",
        )
    )


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


# A value cell (" 0.896 ") and the 3 columns between two table columns.
_VALUE_WIDTH, _GAP = 7, 3
# The text column, when it is shown: narrower than this says too little.
_TEXT_MIN, _TEXT_MAX = 12, 48


def heatmap_layout(n_texts: int, width: int) -> tuple[int, int]:
    """How the heat map fits `width` columns: (text column width, 0 when the texts are
    listed under the table instead; how many value columns are shown)."""
    number = len(str(n_texts))
    fixed = number + _GAP
    columns = max(1, min(n_texts, (width - fixed) // (_VALUE_WIDTH + _GAP)))
    room = width - fixed - n_texts * (_VALUE_WIDTH + _GAP)
    if columns < n_texts or room < _TEXT_MIN:
        return 0, columns
    return min(_TEXT_MAX, room), n_texts


def render_heatmap(texts: Sequence[str], matrix: Sequence[Sequence[float]]) -> None:
    """A table of every pair, coloured from the least to the most alike. On a narrow
    terminal the numbers stay whole: the texts move under the table, and the columns
    that do not fit are left to --tsv and --json."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    out = console.stdout_console()
    text_width, shown = heatmap_layout(len(texts), out.width)
    off_diagonal = [v for i, row in enumerate(matrix) for j, v in enumerate(row) if i != j]
    low = min(off_diagonal, default=0.0)
    high = max(off_diagonal, default=1.0)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    if text_width:
        table.add_column("text", no_wrap=True, width=text_width)
    for i in range(shown):
        table.add_column(str(i + 1), justify="center", no_wrap=True, min_width=_VALUE_WIDTH)
    for i, (text, row) in enumerate(zip(texts, matrix, strict=True)):
        cells: list[Text | str] = [str(i + 1)]
        if text_width:
            cells.append(shorten(text, text_width))
        for j, value in enumerate(row[:shown]):
            style = "dim" if i == j else _heat_style(value, low, high)
            cells.append(Text(f" {value:.3f} ", style=style))
        table.add_row(*cells)
    out.print(table)
    if not text_width:
        number = len(str(len(texts)))
        for i, text in enumerate(texts, 1):
            out.print(Text(f"{i:>{number}}  ", style="dim") + Text(shorten(text, out.width - 8)))
    note = (
        "cosine similarity: 1 = pointing the same way; higher = closer in meaning "
        "(as this model sees it)"
    )
    if shown < len(texts):
        note += f". Columns 1–{shown} of {len(texts)} fit here; all of them: --tsv or --json"
    out.print(Text(note, style="dim"))


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
        tokens = [repr(c.token.text) for c in step.candidates]
        ids = [str(c.token.id) for c in step.candidates]
        # What is left beside the probability, the token and its id (and the gaps).
        room = out.width - 11 - max(map(len, tokens), default=5) - max(map(len, ids), default=2)
        bar_width = max(8, min(30, room - 3))
        table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="dim")
        table.add_column("chance", justify="right", no_wrap=True)
        table.add_column("", no_wrap=True)
        table.add_column("token", no_wrap=True, overflow="ellipsis")
        table.add_column("id", justify="right", style="dim", no_wrap=True)
        for rank, c in enumerate(step.candidates):
            token_style = "bold" if rank == 0 else ""
            table.add_row(
                f"{c.probability * 100:5.1f}%",
                Text(bar(c.probability, bar_width), style="cyan"),
                Text(tokens[rank], style=token_style),
                ids[rank],
            )
        out.print(table)
        if len(steps) > 1:
            out.print()
        before = prompt_tail + step.text_so_far
    if len(steps) > 1:
        out.print(Text("greedy continuation: ", style="dim") + Text(steps[-1].text_so_far))
