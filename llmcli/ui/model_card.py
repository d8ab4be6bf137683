"""`llmcli show`: the model card as a table on a terminal, `key: value` lines when piped,
and the network's shape explained in plain words for people new to language models."""

from __future__ import annotations

from collections.abc import Sequence

from llmcli import terminal
from llmcli.gguf_file.info import ModelCard
from llmcli.humanize import format_bytes
from llmcli.ui import console


def format_count(n: int) -> str:
    """Parameter counts the way model names write them: 135M, 7.6B, 1.2T."""
    for size, unit in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value >= 100 else f"{value:.3g}{unit}"
    return str(n)


def _num(value: int | None) -> str:
    return f"{value:,}" if value is not None else "unknown"


def card_rows(card: ModelCard) -> list[tuple[str, str]]:
    """The card as (field, value) pairs, in reading order."""
    heads = _num(card.attention_heads)
    if card.kv_heads is not None and card.kv_heads != card.attention_heads:
        heads += f" ({card.kv_heads} key/value)"
    quant = card.quantization or "unknown"
    if card.bits_per_weight is not None:
        quant += f" ({card.bits_per_weight:.2f} bits per weight)"
    rows = [
        ("name", card.name or "unknown"),
        ("architecture", card.architecture or "unknown"),
        ("parameters", f"{format_count(card.parameters)} ({card.parameters:,})"),
        ("layers", _num(card.layers)),
        ("attention heads", heads),
        ("embedding length", _num(card.embedding_length)),
        ("feed-forward length", _num(card.feed_forward_length)),
    ]
    if card.experts:
        rows.append(("experts", f"{card.experts} ({_num(card.experts_used)} used per token)"))
    rows += [
        ("context length", _num(card.context_length)),
        ("vocabulary", f"{_num(card.vocab_size)} tokens ({card.tokenizer_model or 'unknown'})"),
        ("quantization", quant),
        ("tensor types", tensor_mix_text(card)),
        ("size on disk", format_bytes(card.size_bytes)),
    ]
    if card.split_count > 1:
        rows.append(("split", f"{card.split_parts_found} of {card.split_count} parts present"))
    rows += [
        ("license", card.license or "not stated"),
        ("chat template", "yes (see --template)" if card.has_chat_template else "no"),
        ("path", card.path),
    ]
    return rows


def tensor_mix_text(card: ModelCard) -> str:
    parts = []
    for share in card.tensor_types:
        size = f", {format_bytes(share.bytes)}" if share.bytes is not None else ""
        parts.append(f"{share.type} ×{share.tensors}{size}")
    return "; ".join(parts) or "none"


def explain(card: ModelCard) -> list[str]:
    """The shape of the network in words a newcomer can follow, one point per item.
    Facts the header does not give are left out."""
    who = card.name or "This model"
    arch = f" ({card.architecture} architecture)" if card.architecture else ""
    lines = [
        f"{who}{arch} has {format_count(card.parameters)} parameters: "
        "numbers learned in training that together make up the network."
    ]
    if card.vocab_size:
        lines.append(
            f"Text is cut into tokens (words or pieces of words) from a vocabulary of "
            f"{card.vocab_size:,}."
        )
    if card.embedding_length:
        lines.append(
            f"Each token becomes a vector of {card.embedding_length:,} numbers "
            "(the embedding width), which the network refines step by step."
        )
    if card.layers:
        layer = f"These vectors pass through {card.layers} transformer layers."
        if card.attention_heads:
            layer += (
                f" In each, {card.attention_heads} attention heads let every token look at "
                "the tokens before it"
            )
            if card.kv_heads and card.kv_heads < card.attention_heads:
                layer += (
                    f"; they share {card.kv_heads} key/value heads (grouped-query attention), "
                    "which keeps the memory for past tokens small"
                )
            layer += "."
        if card.feed_forward_length:
            layer += (
                f" Then a feed-forward network widens each vector to "
                f"{card.feed_forward_length:,} numbers and back."
            )
        lines.append(layer)
    if card.experts:
        lines.append(
            f"It is a mixture of experts: {card.experts} feed-forward experts per layer, "
            f"of which {card.experts_used or 'a few'} work on each token, so only part "
            "of the parameters is used per token."
        )
    if card.vocab_size:
        lines.append(
            "At the end, the last vector is turned into a score for every token in the "
            "vocabulary: that is the prediction of the next token."
        )
    if card.context_length:
        lines.append(
            f"It was trained to read up to {card.context_length:,} tokens at once "
            "(its context window: prompt and answer together)."
        )
    if card.quantization and card.bits_per_weight:
        lines.append(
            f"The weights are stored as {card.quantization}, about "
            f"{card.bits_per_weight:.1f} bits each instead of 16, so the file takes "
            f"{format_bytes(card.size_bytes)}."
        )
    return lines


def render_card(card: ModelCard, extra: Sequence[tuple[str, str]] = ()) -> None:
    """Rich table plus explanation on a terminal; `field: value` lines when piped.
    `extra`: rows the file's header cannot give (the projector beside it)."""
    rows = card_rows(card) + list(extra)
    if not terminal.current().stdout_rich:
        width = max(len(k) for k, _ in rows)
        console.emit_text("".join(f"{k + ':':<{width + 1}} {v}\n" for k, v in rows))
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    out = console.stdout_console()
    table = Table(box=box.SIMPLE, show_header=False, pad_edge=False, show_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)
    out.print()
    out.print(Text("In plain words", style="bold"))
    for line in explain(card):
        out.print(Text("• ") + Text(line))


def render_template(card: ModelCard) -> None:
    """The chat template, verbatim, for redirecting into a file."""
    console.emit_text(card.chat_template or "")
