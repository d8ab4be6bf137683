"""`llmcli explain` as a page of text: each section's sentences, then a compact picture of
its numbers. The same lines go to a terminal (headings in bold) and to a pipe (plain);
every line fits the width, counted in terminal cells (a CJK character takes two)."""

from __future__ import annotations

from typing import Any

from llmcli.explain import prose
from llmcli.ui import console
from llmcli.ui.inspect_views import bar, escape

# Wider pages only spread the pictures thin.
MAX_WIDTH = 100
MIN_WIDTH = 60
_SHADES = " ░▒▓█"
# Rows of the attention strip (earlier tokens) and the most tokens a full map shows.
STRIP_KEYS = 10
MAP_TOKENS = 12
LABEL = 12

Line = tuple[str, str]  # (text, style)


def _cells(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def fit(text: str, width: int) -> str:
    """Exactly `width` cells: cut with "…" or padded with spaces."""
    from rich.cells import set_cell_size

    if _cells(text) <= width:
        return text + " " * (width - _cells(text))
    return set_cell_size(text, width - 1) + "…"


def label(text: str) -> str:
    flat = escape(text)
    return "␣" + flat[1:] if flat.startswith(" ") else flat


def wrap(text: str, width: int, indent: str = "") -> list[str]:
    lines: list[str] = []
    line = indent
    for word in text.split(" "):
        candidate = f"{line} {word}" if line.strip() else indent + word
        if _cells(candidate) <= width or not line.strip():
            line = candidate if _cells(candidate) <= width else fit(candidate, width)
        else:
            lines.append(line)
            line = fit(indent + word, width) if _cells(indent + word) > width else indent + word
    lines.append(line)
    return [item.rstrip() for item in lines]


def _flow(items: list[str], width: int, sep: str = "  ") -> list[str]:
    """Items side by side, as many per line as fit."""
    lines: list[str] = []
    line = ""
    for item in items:
        item = fit(item, width - 2) if _cells(item) > width - 2 else item
        candidate = f"{line}{sep}{item}" if line else f"  {item}"
        if _cells(candidate) > width and line:
            lines.append(line)
            candidate = f"  {item}"
        line = candidate
    if line:
        lines.append(line)
    return lines


def page(story: dict[str, Any], width: int) -> list[Line]:
    width = max(MIN_WIDTH, min(MAX_WIDTH, width))
    text = prose.sections(story)
    pictures = {
        "tokens": _tokens,
        "embeddings": _embeddings,
        "network": _network,
        "attention": _attention,
        "lens": _lens,
        "next": _next,
        "continuation": _continuation,
    }
    out: list[Line] = []
    for name, title in prose.TITLES.items():
        if out:
            out.append(("", ""))
        out.append((fit(title, width).rstrip(), "bold"))
        for sentence in text[name]:
            out += [(line, "") for line in wrap(sentence, width)]
        out += [
            (line, "dim" if line.startswith("  (") else "") for line in pictures[name](story, width)
        ]
    return out


def _tokens(story: dict[str, Any], width: int) -> list[str]:
    tokens = story["tokens"]["tokens"]
    pieces = [f"[{label(t['text'])}] {t['id']}" for t in tokens]
    lines = _flow(pieces, width)
    if len(lines) > 6:
        lines = [*lines[:6], f"  (… {len(tokens):,} tokens in all; --json lists every one)"]
    return lines


def _embeddings(story: dict[str, Any], width: int) -> list[str]:
    lines = []
    for entry in story["embeddings"]["neighbours"][:8]:
        near = "  ".join(f"{label(n['text'])} {n['similarity']:.2f}" for n in entry["nearest"])
        lines.append(fit(f"  {fit(label(entry['text']), LABEL)} → {near}", width).rstrip())
    return lines


def _network(story: dict[str, Any], width: int) -> list[str]:
    n = story["network"]
    last = story["tokens"]["tokens"][-1]
    steps = [
        f"{prose.quote(last['text'])} (id {last['id']})",
        f"embedding: {prose.count(n['width'])} numbers",
        f"{prose.count(n['layers'])} layers, each: attention ({prose.count(n['heads'])} heads)"
        f" + feed-forward ({prose.count(n['feed_forward'])})",
        f"final norm + output head: {prose.count(n['vocabulary'])} scores",
        "softmax: probabilities → the next token",
    ]
    return [
        fit(("  " if i == 0 else "  → ") + step, width).rstrip() for i, step in enumerate(steps)
    ]


def _shade(share: float) -> str:
    level = (
        0 if share < 0.05 else 1 if share < 0.2 else 2 if share < 0.45 else 3 if share < 0.7 else 4
    )
    return _SHADES[level]


def _attention(story: dict[str, Any], width: int) -> list[str]:
    a = story["attention"]
    tokens = story["tokens"]["tokens"]
    rows = a["last_token"]
    n_layers = len(rows)
    cell = 2 if LABEL + 4 + 2 * n_layers <= width else 1
    n_layers = min(n_layers, (width - LABEL - 4) // cell)
    # The earlier tokens that draw the most attention over all layers, in text order.
    totals = [sum(row[i] for row in rows) for i in range(len(tokens))]
    keys = sorted(sorted(range(len(tokens)), key=lambda i: -totals[i])[:STRIP_KEYS])
    lines = [
        f"  what {prose.last_token(story)} attends to, layer by layer (heads averaged):",
        "  " + " " * LABEL + "layer 0" + f"{n_layers - 1:>{max(1, cell * n_layers - 7)}}",
    ]
    for i in keys:
        strip = "".join(_shade(rows[layer][i]) * cell for layer in range(n_layers))
        lines.append(f"  {fit(label(tokens[i]['text']), LABEL)}{strip}")
    legend = "  (shade: share of attention: blank under 5%, ░ 5-20%, ▒ 20-45%, ▓ 45-70%, █ 70% up)"
    lines.append(fit(legend, width).rstrip())
    if len(tokens) <= MAP_TOKENS and len(tokens) > 1:
        lines.append("")
        lines.append(
            f"  layer {a['layer']}, head {a['head']}: each row, what that token attends to"
        )
        weights = a["map"]
        for q, row in enumerate(weights):
            cells = "".join(_shade(row[k]) * 2 for k in range(q + 1))
            lines.append(f"  {fit(label(tokens[q]['text']), LABEL)}{cells}")
    return [fit(line, width).rstrip() for line in lines]


def _lens(story: dict[str, Any], width: int) -> list[str]:
    layers = story["lens"]["layers"]
    col = 25
    per_line = max(1, (width - 2) // col)
    rows = (len(layers) + per_line - 1) // per_line
    lines = []
    for r in range(rows):
        parts = []
        for c in range(per_line):
            layer = c * rows + r
            if layer < len(layers):
                g = layers[layer]["positions"][-1][0]
                parts.append(
                    f"{layer:>3} {fit(label(g['text']), 12)} {prose.percent(g['probability']):>6}"
                )
        lines.append("  " + "  ".join(parts))
    lines.append(
        f"  (the top guess after each layer, for the token after {prose.last_token(story)})"
    )
    return [fit(line, width).rstrip() for line in lines]


def _bars(candidates: list[dict[str, Any]], width: int) -> list[str]:
    size = max(10, width - LABEL - 14)
    lines = []
    for c in candidates:
        p = c["probability"]
        lines.append(f"  {fit(label(c['text']), LABEL)} {bar(p, size)} {prose.percent(p):>6}")
    return lines


def _next(story: dict[str, Any], width: int) -> list[str]:
    nxt = story["next"]
    lines = ["  the model's own (temperature 1, top-p 1):", *_bars(nxt["candidates"], width)]
    for s in nxt["settings"]:
        lines.append(f"  --temperature {s['temperature']:g} --top-p {s['top_p']:g}:")
        lines += _bars(s["candidates"][:3], width)
    return [fit(line, width).rstrip() for line in lines]


def _continuation(story: dict[str, Any], width: int) -> list[str]:
    steps = story["continuation"]["tokens"]
    return _flow([f"{label(t['text'])} {prose.percent(t['probability'])}" for t in steps], width)


def render(story: dict[str, Any]) -> None:
    """The page on stdout: styled on a terminal, plain text through a pipe."""
    from llmcli import terminal

    out = console.stdout_console()
    lines = page(story, out.width)
    if not terminal.current().stdout_rich:
        console.emit_text("\n".join(text for text, _ in lines) + "\n")
        return
    from rich.text import Text

    for text, style in lines:
        out.print(Text(text, style=style), overflow="ignore", crop=False)
