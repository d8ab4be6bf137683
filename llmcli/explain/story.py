"""The story as one JSON-ready object, with the same numbers the single commands give:
`tokens` as `tokenize --json`, `attention` as `attention --json`, `lens` as `lens --json`,
`next` and `continuation` as `next --json --steps N`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmcli.engine.inside import Inside
    from llmcli.engine.vocab import Token
    from llmcli.gguf_file.info import ModelCard


def _token(t: Token) -> dict[str, Any]:
    return {"id": t.id, "text": t.text, "bytes": list(t.data)}


def _rounded(rows: Any, decimals: int = 6) -> Any:
    """Weights to 6 decimals: the page and the JSON stay small, nothing shown changes."""
    import numpy as np

    return np.round(np.asarray(rows, dtype=np.float64), decimals).tolist()


def build(found: Inside, card: ModelCard, *, text: str, chat: bool) -> dict[str, Any]:
    return {
        "tokens": _tokens(found, text, chat),
        "embeddings": _embeddings(found, card),
        "network": _network(card),
        "attention": _attention(found),
        "lens": _lens(found),
        "next": _next(found),
        "continuation": _continuation(found),
    }


def _tokens(found: Inside, text: str, chat: bool) -> dict[str, Any]:
    count = len(found.tokens)
    return {
        "text": text,
        "chat_template": chat,
        "count": count,
        "characters": len(text),
        "characters_per_token": round(len(text) / count, 2) if count else 0.0,
        "tokens": [_token(t) for t in found.tokens],
    }


def _embeddings(found: Inside, card: ModelCard) -> dict[str, Any]:
    return {
        "width": card.embedding_length,
        "vocabulary": card.vocab_size,
        "neighbours": [
            {
                **_token(n.token),
                "nearest": [
                    {"id": t.id, "text": t.text, "similarity": round(s, 4)} for t, s in n.nearest
                ],
            }
            for n in found.neighbours
        ],
    }


def _network(card: ModelCard) -> dict[str, Any]:
    return {
        "name": card.name,
        "architecture": card.architecture,
        "parameters": card.parameters,
        "layers": card.layers,
        "heads": card.attention_heads,
        "kv_heads": card.kv_heads,
        "width": card.embedding_length,
        "feed_forward": card.feed_forward_length,
        "vocabulary": card.vocab_size,
        "context_length": card.context_length,
        "quantization": card.quantization,
    }


def shown_head(found: Inside) -> tuple[int, int]:
    """The layer and head that look most at the previous token: the clearest pattern to
    show in one map. Every layer's maps are kept for short texts only; for longer ones
    the choice is among the heads of the mapped (middle) layer."""
    candidates = [
        s
        for s in found.attention.overview
        if found.head_maps is not None or s.layer == found.attention.layer
    ]
    best = max(candidates, key=lambda s: (s.previous, -s.layer, -s.head))
    return best.layer, best.head


def _attention(found: Inside) -> dict[str, Any]:
    maps = found.attention
    layer, head = shown_head(found)
    full = found.head_maps
    chosen = maps.head(head) if full is None else full[layer, head]
    return {
        "layer": layer,
        "layers": maps.shape.layers,
        "heads": maps.shape.heads,
        "kv_heads": maps.shape.kv_heads,
        "head": head,
        "map": _rounded(chosen),
        "last_token": _rounded(found.last_row),
        # Every layer's map, heads averaged, for texts short enough (else null).
        # (4 decimals: shades on the page, layers x tokens^2 numbers.)
        "layer_means": None if full is None else _rounded(full.mean(axis=1), 4),
        "overview": [
            {
                "layer": s.layer,
                "head": s.head,
                "previous": s.previous,
                "first": s.first,
                "self": s.self,
                "kind": s.kind,
            }
            for s in maps.overview
        ],
    }


def _lens(found: Inside) -> dict[str, Any]:
    return {
        "first": found.lens.first,
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
            for layer, positions in enumerate(found.lens.guesses)
        ],
    }


def _next(found: Inside) -> dict[str, Any]:
    first = found.steps[0]
    return {
        "prompt_tokens": len(found.tokens),
        "candidates": [
            {**_token(c.token), "probability": c.probability, "logit": c.logit}
            for c in first.candidates
        ],
        "settings": [
            {
                "temperature": r.temperature,
                "top_p": r.top_p,
                "kept": r.kept,
                "candidates": [
                    {"id": t.id, "text": t.text, "probability": p} for t, p in r.candidates
                ],
            }
            for r in found.reshaped
        ],
    }


def _continuation(found: Inside) -> dict[str, Any]:
    steps: Sequence[Any] = found.steps
    return {
        "text": steps[-1].text_so_far if steps else "",
        "tokens": [{**_token(s.chosen.token), "probability": s.chosen.probability} for s in steps],
    }
