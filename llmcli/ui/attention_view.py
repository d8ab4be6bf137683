"""Attention maps on a terminal: a heat map of query tokens (rows) by key tokens
(columns), cropped to what the terminal fits, and an overview of what every head looks
at. TSV when piped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmcli.ui import console
from llmcli.ui.inspect_views import escape

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from rich.text import Text

    from llmcli.engine.attention import HeadSummary
    from llmcli.engine.vocab import Token

LABEL_WIDTH = 14
# Lines of the column labels, written top to bottom.
COLUMN_LABEL_LINES = 6
_SHADES = " ░▒▓█"
_KIND_MARK = {"previous": "P", "first": "F", "self": "S", "mixed": "·"}


@dataclass(frozen=True)
class Map:
    """One heat map: of one head, or (head None) the mean of the layer's heads."""

    head: int | None
    weights: npt.NDArray[np.float32]

    @property
    def title(self) -> str:
        return "mean of heads" if self.head is None else f"head {self.head}"


def label(token: Token) -> str:
    """A token's text on one line, with a visible leading space."""
    text = escape(token.text)
    return "␣" + text[1:] if text.startswith(" ") else text


# -- piped ---------------------------------------------------------------------------------


def maps_tsv(tokens: Sequence[Token], maps: Sequence[Map]) -> str:
    """A header of the key tokens, then one line per head and query token."""
    labels = [escape(t.text) for t in tokens]
    lines = ["head\tposition\ttoken\t" + "\t".join(labels)]
    for m in maps:
        for i, row in enumerate(m.weights):
            values = "\t".join(f"{v:.6f}" for v in row)
            name = "mean" if m.head is None else str(m.head)
            lines.append(f"{name}\t{i}\t{labels[i]}\t{values}")
    return "\n".join(lines) + "\n"


# -- terminal ------------------------------------------------------------------------------


def visible_tokens(n_tokens: int, width: int) -> int:
    """How many tokens fit across: two cells per column after the row labels."""
    return max(4, min(n_tokens, (width - LABEL_WIDTH - 1) // 2))


def _cell_style(share: float) -> str:
    # Dark blue through magenta to yellow, like common perceptual colour maps.
    red = int(40 + 215 * share)
    green = int(30 + 200 * share * share)
    blue = int(140 * (1 - share) + 40)
    return f"rgb({red},{green},{blue})"


def heat_map(tokens: Sequence[Token], weights: npt.NDArray[np.float32], width: int) -> Text:
    """The lower-right corner of the map that fits `width` columns."""
    from rich.text import Text

    n = len(tokens)
    k = visible_tokens(n, width)
    first = n - k
    shown = weights[first:, first:]
    # Square root: most heads pour most of their attention into one or two tokens; the
    # rest would all look blank on a linear scale.
    top = float(shown.max()) or 1.0
    text = Text()
    labels = [label(t) for t in tokens[first:]]
    for line in range(COLUMN_LABEL_LINES):
        text.append(" " * (LABEL_WIDTH + 1))
        for name in labels:
            text.append((name[line] if line < len(name) else " ").ljust(2), style="dim")
        text.append("\n")
    for i in range(k):
        row_label = labels[i][: LABEL_WIDTH - 1].rjust(LABEL_WIDTH)
        text.append(row_label + " ", style="bold")
        for j in range(k):
            if j > i:
                text.append("  ")
                continue
            share = math.sqrt(max(0.0, float(shown[i, j])) / top)
            shade = _SHADES[max(1, round(share * (len(_SHADES) - 1)))]
            text.append(shade * 2, style=_cell_style(share))
        text.append("\n")
    return text


def overview_table(overview: Sequence[HeadSummary], layer: int) -> Text:
    """Layers down, heads across: P looks at the previous token, F at the first, S at
    itself (share of attention, in percent), · a mix."""
    from rich.text import Text

    heads = 1 + max((s.head for s in overview), default=0)
    text = Text()
    text.append("layer " + "".join(f"{h:>5}" for h in range(heads)) + "\n", style="dim")
    by_layer: dict[int, list[HeadSummary]] = {}
    for s in overview:
        by_layer.setdefault(s.layer, []).append(s)
    for n, summaries in sorted(by_layer.items()):
        text.append(f"{n:>5} ", style="bold" if n == layer else "dim")
        for s in sorted(summaries, key=lambda s: s.head):
            kind = s.kind
            if kind == "mixed":
                text.append("    ·", style="dim")
                continue
            share = {"previous": s.previous, "first": s.first, "self": s.self}[kind]
            cell = f"{_KIND_MARK[kind]}{min(99, round(share * 100)):>2}".rjust(5)
            style = {"previous": "bold cyan", "first": "yellow", "self": "magenta"}[kind]
            text.append(cell, style=style)
        text.append("  ◀ shown\n" if n == layer else "\n", style="bold")
    return text


def render(
    tokens: Sequence[Token],
    maps: Sequence[Map],
    overview: Sequence[HeadSummary],
    *,
    layer: int,
) -> None:
    from rich.text import Text

    out = console.stdout_console()
    n = len(tokens)
    k = visible_tokens(n, out.width)
    for m in maps:
        out.print(Text(f"layer {layer}, {m.title}", style="bold"))
        out.print(heat_map(tokens, m.weights, out.width), end="")
    note = "rows: each token; columns: the tokens it attends to (darker = less)"
    if k < n:
        note += (
            f". Showing the last {k} of {n} tokens (the terminal is {out.width} columns wide); "
            "the full map: --json, piped TSV or --save"
        )
    out.print(Text(note, style="dim"))
    out.print()
    out.print(Text("What each head looks at", style="bold"))
    out.print(overview_table(overview, layer), end="")
    out.print(
        Text(
            "P the previous token, F the first token, S itself (% of attention, averaged "
            "over tokens 3 on); · a mix",
            style="dim",
        )
    )
    found = [s for s in overview if s.kind == "previous"]
    if found:
        heads = ", ".join(f"{s.layer}.{s.head}" for s in found[:12])
        more = f" and {len(found) - 12} more" if len(found) > 12 else ""
        out.print(Text(f"previous-token heads (layer.head): {heads}{more}", style="dim"))
