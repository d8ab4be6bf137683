"""`/v1/embeddings`: vectors from the embedding model, loaded on first use.

A text too long or empty is the engine's error, which errors.py answers naming `input`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llmcli.serve import protocol as p

if TYPE_CHECKING:
    from llmcli.serve.state import ServerState


async def answer(request: Request, state: ServerState, data: dict[str, Any]) -> Response:
    texts, as_base64 = p.embedding_inputs(data)
    vectors, n_tokens = await run_in_threadpool(_embed, state, texts)
    request.scope["llmcli.note"] = f"{len(texts)} input(s), {n_tokens} tokens"
    return JSONResponse(
        {
            "object": "list",
            "model": state.name,
            "data": [
                {"object": "embedding", "index": i, "embedding": p.encode_vector(v, as_base64)}
                for i, v in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
        }
    )


def _embed(state: ServerState, texts: list[str]) -> tuple[list[list[float]], int]:
    from llmcli.engine.vectors import embed

    held = state.resident
    with held.embed_lock:
        if held.embedder is None:
            held.embedder = state.load_embedder()
        model = held.embedder
        n_tokens = sum(len(model.tokenize(t)) for t in texts)
        return embed(model, texts), n_tokens
