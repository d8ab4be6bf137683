"""The sentences of each section, written from the story's own numbers (llmcli.explain.story),
so that the terminal page and the HTML page tell the same story."""

from __future__ import annotations

from typing import Any

TITLES = {
    "tokens": "1. Tokens: the text becomes numbers",
    "embeddings": "2. Embeddings: each token becomes a vector",
    "network": "3. The network: layer after layer",
    "attention": "4. Attention: tokens look back at each other",
    "lens": "5. The logit lens: where the answer forms",
    "next": "6. The next token: a probability for every token",
    "continuation": "7. The continuation: the loop repeats",
}


def quote(text: str) -> str:
    """A token's text in quotes, with its invisible characters made visible."""
    shown = (
        text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    )
    return f"“{shown}”"


def percent(p: float) -> str:
    return f"{p * 100:.1f}%" if p >= 0.001 else "<0.1%"


def count(n: int | None) -> str:
    return f"{n:,}" if n is not None else "an unknown number of"


def sections(story: dict[str, Any]) -> dict[str, list[str]]:
    return {
        "tokens": _tokens(story),
        "embeddings": _embeddings(story),
        "network": _network(story),
        "attention": _attention(story),
        "lens": _lens(story),
        "next": _next(story),
        "continuation": _continuation(story),
    }


def last_token(story: dict[str, Any]) -> str:
    return quote(story["tokens"]["tokens"][-1]["text"])


def _tokens(story: dict[str, Any]) -> list[str]:
    t = story["tokens"]
    vocab = story["network"]["vocabulary"]
    first = t["tokens"][0]
    lines = [
        "A language model never sees letters. Its tokenizer cuts the text into tokens, "
        "whole words or pieces of words, and each token is a number: its id in a vocabulary "
        f"of {count(vocab)} tokens.",
        f"This text of {t['characters']:,} characters became {t['count']:,} tokens, "
        f"{t['characters_per_token']} characters per token; the first, {quote(first['text'])}, "
        f"is token {first['id']}.",
    ]
    if t["chat_template"]:
        lines.append(
            "The text was first wrapped in the model's chat template, as a chat would send "
            "it, so some tokens are the template's markers."
        )
    return lines


def _words(entry: dict[str, Any]) -> int:
    return sum(ch.isalpha() for ch in entry["text"])


def _embeddings(story: dict[str, Any]) -> list[str]:
    e = story["embeddings"]
    lines = [
        "Each id selects one row of the model's embedding table: a vector of "
        f"{count(e['width'])} numbers learned in training. Tokens that are used alike end up "
        "with vectors that point the same way."
    ]
    if e["neighbours"]:
        best = max(e["neighbours"], key=_words)
        near = best["nearest"][:3]
        names = ", ".join(f"{quote(n['text'])} ({n['similarity']:.2f})" for n in near)
        lines.append(
            f"The rows closest to {quote(best['text'])} are {names}, by cosine similarity "
            "(1 would be the same direction)."
        )
    return lines


def _network(story: dict[str, Any]) -> list[str]:
    n = story["network"]
    name = n["name"] or "This model"
    lines = [
        f"{name} is a stack of {count(n['layers'])} layers holding {count(n['parameters'])} "
        "parameters. Every token's vector passes through each layer in turn; a layer adds "
        "its result to the vector (the residual stream) instead of replacing it."
    ]
    inner = (
        f"In each layer, {count(n['heads'])} attention heads mix in information from earlier tokens"
    )
    if n["kv_heads"] and n["heads"] and n["kv_heads"] < n["heads"]:
        inner += f" (sharing {n['kv_heads']} key/value heads)"
    if n["feed_forward"]:
        inner += (
            f", then a feed-forward network widens each vector to {n['feed_forward']:,} "
            "numbers and back, working on each token alone"
        )
    lines.append(inner + ".")
    lines.append(
        f"After the last layer, the vector of the last token, {last_token(story)}, is scored "
        f"against every one of the {count(n['vocabulary'])} tokens of the vocabulary."
    )
    return lines


def _attention(story: dict[str, Any]) -> list[str]:
    a = story["attention"]
    tokens = story["tokens"]["tokens"]
    lines = [
        "Attention is how a token gathers what it needs from the tokens before it (never "
        "after: the model reads left to right). Each head gives every earlier token a "
        "share of its attention; the shares add up to 100%."
    ]
    rows = a["last_token"]
    if len(tokens) > 1:
        on_first = sum(1 for row in rows if max(row) == row[0])
        lines.append(
            f"The last token, {last_token(story)}, gives its largest share to the first token "
            f"in {on_first} of {len(rows)} layers: many heads park attention there when "
            "nothing else is needed (an attention sink)."
        )
        head = next(s for s in a["overview"] if s["layer"] == a["layer"] and s["head"] == a["head"])
        lines.append(
            f"Head {a['head']} of layer {a['layer']} looks at the previous token: on average "
            f"{percent(head['previous'])} of each token's attention goes to the token just "
            "before it."
        )
    return lines


def lens_forms(story: dict[str, Any]) -> tuple[int, int, dict[str, Any]]:
    """For the last position: the first layer whose top guess is the final answer, the
    layer from which it stays the top guess, and that answer."""
    layers = story["lens"]["layers"]
    final = layers[-1]["positions"][-1][0]
    tops = [layer["positions"][-1][0]["id"] for layer in layers]
    since = len(layers) - 1
    while since > 0 and tops[since - 1] == final["id"]:
        since -= 1
    return tops.index(final["id"]), since, final


def _lens(story: dict[str, Any]) -> list[str]:
    layers = story["lens"]["layers"]
    first, since, final = lens_forms(story)
    last = len(layers) - 1
    answer, p = quote(final["text"]), percent(final["probability"])
    lines = [
        "The logit lens puts each layer's vector through the model's final norm and output "
        "head, asking: what would the model say if it stopped here?"
    ]
    if first == last:
        lines.append(
            f"For the last token the answer, {answer}, appears only at the last layer ({p}): "
            "the earlier layers' guesses are generic."
        )
    elif first == since:
        at = percent(layers[since]["positions"][-1][0]["probability"])
        lines.append(
            f"For the last token, {answer} becomes the top guess at layer {since} ({at}) and "
            f"stays there to the last layer ({p}); before that the guesses are generic."
        )
    else:
        where = f"from layer {since} on" if since < last else "again at the last layer"
        lines.append(
            f"For the last token, {answer} first tops the guesses at layer {first}, loses the "
            f"lead, and holds it {where} ({p} at the last layer)."
        )
    return lines


def _next(story: dict[str, Any]) -> list[str]:
    nxt = story["next"]
    tops = ", ".join(
        f"{quote(c['text'])} {percent(c['probability'])}" for c in nxt["candidates"][:3]
    )
    lines = [
        "The last layer's scores (logits) become probabilities with a softmax: "
        f"{tops}. Sampling draws the next token from this distribution."
    ]
    for s in nxt["settings"]:
        first = s["candidates"][0]
        how = f"--temperature {s['temperature']:g}"
        if s["top_p"] < 1:
            how += (
                f" --top-p {s['top_p']:g}: top-p keeps the {s['kept']:,} likeliest tokens "
                f"that together reach {s['top_p']:.0%}, then the temperature"
            )
        else:
            how += ": the temperature"
        verb = "sharpens" if s["temperature"] < 1 else "flattens"
        lines.append(
            f"With {how} {verb} the odds: {quote(first['text'])} {percent(first['probability'])}."
        )
    return lines


def _continuation(story: dict[str, Any]) -> list[str]:
    c = story["continuation"]
    lines = [
        "To write more, the chosen token is appended and everything above runs again on the "
        "longer text, one token at a time.",
    ]
    if c["tokens"]:
        weakest = min(c["tokens"], key=lambda t: t["probability"])
        lines.append(
            f"Taking the likeliest token each time (as --temperature 0 does) continues the text "
            f"with {quote(c['text'])}; the least certain step was {quote(weakest['text'])} "
            f"at {percent(weakest['probability'])}."
        )
    return lines
