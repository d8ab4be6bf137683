"""The logit lens on a terminal: layers down, positions across, each cell the token the
model would predict if it stopped after that layer. TSV when piped."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmcli.ui import console
from llmcli.ui.attention_view import label
from llmcli.ui.inspect_views import escape

if TYPE_CHECKING:
    from rich.text import Text

    from llmcli.engine.lens import Guess, Lens

CELL_WIDTH = 10
LAYER_WIDTH = 6


def lens_tsv(found: Lens) -> str:
    """One line per layer, position and rank."""
    lines = ["layer\tposition\ttoken\trank\tid\tprobability\tprediction"]
    for layer, positions in enumerate(found.guesses):
        for pos, guesses in enumerate(positions, found.first):
            token = escape(found.tokens[pos].text)
            for rank, g in enumerate(guesses, 1):
                lines.append(
                    f"{layer}\t{pos}\t{token}\t{rank}\t{g.token.id}\t{g.probability:.6f}\t"
                    f"{escape(g.token.text)}"
                )
    return "\n".join(lines) + "\n"


def visible_positions(n_tokens: int, width: int) -> int:
    return max(1, min(n_tokens, (width - LAYER_WIDTH) // (CELL_WIDTH + 1)))


def table_positions(n_tokens: int) -> int:
    """How many of the last positions the table on this terminal has room for."""
    return visible_positions(n_tokens, console.stdout_console().width)


def clip(text: str, width: int) -> str:
    """At most `width` characters; a cut shows as "…", so that "␣capi…" is never taken
    for a token of its own."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _cell(guess: Guess) -> Text:
    from rich.text import Text

    p = guess.probability
    style = "bold" if p >= 0.5 else "" if p >= 0.1 else "dim"
    word = clip(label(guess.token), CELL_WIDTH - 4)
    return Text(f"{word} {min(99, round(p * 100)):>2}".ljust(CELL_WIDTH), style=style)


def render(found: Lens) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    out = console.stdout_console()
    n = len(found.tokens)
    first = max(n - visible_positions(n, out.width), found.first)
    k = n - first
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    table.add_column("layer", justify="right", style="dim", width=LAYER_WIDTH - 1)
    for token in found.tokens[first:]:
        table.add_column(clip(label(token), CELL_WIDTH), no_wrap=True, width=CELL_WIDTH)
    for layer, positions in enumerate(found.guesses):
        table.add_row(str(layer), *(_cell(g[0]) for g in positions[first - found.first :]))
    out.print(table)
    note = (
        "each column: a token of the text; each cell: the likeliest next token after that "
        "layer, with its probability in %. The last layer is the model's real prediction"
    )
    if k < n:
        note += (
            f". Showing the last {k} of {n} tokens (the terminal is {out.width} columns "
            "wide); all of them: --json or piped TSV"
        )
    out.print(Text(note, style="dim"))


def as_json(found: Lens) -> dict[str, object]:
    return {
        "tokens": [{"id": t.id, "text": t.text, "bytes": list(t.data)} for t in found.tokens],
        "layers": [
            {
                "layer": layer,
                "positions": [
                    [
                        {"id": g.token.id, "text": g.token.text, "probability": g.probability}
                        for g in guesses
                    ]
                    for guesses in positions
                ],
            }
            for layer, positions in enumerate(found.guesses)
        ],
    }
