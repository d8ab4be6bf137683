"""`/v1/rerank` and `/rerank`: documents ordered by relevance to a query, in the shape
llama-server, Jina and Cohere clients use.

Request: `query`, `documents` (strings, or objects with `text`), optional `top_n` and
`return_documents`. Answer: `results` of `{index, relevance_score, document?}`, most
relevant first, and `usage`. Only a reranker GGUF (rank pooling) can answer; it loads on
first use, beside the served model, like the embedding model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llmcli.serve import protocol as p

if TYPE_CHECKING:
    from llmcli.engine.rerank import Ranked
    from llmcli.serve.state import ServerState


@dataclass(frozen=True)
class RerankRequest:
    query: str
    documents: list[str]
    top_n: int | None
    return_documents: bool


def request_from(data: dict[str, Any]) -> RerankRequest:
    query = data.get("query")
    if not isinstance(query, str):
        raise p.bad("'query' must be a string", "query")
    if not query.strip():
        raise p.bad("'query' is empty: give some text to rank the documents by", "query")
    p.checked_text(query, "query")
    # llama-server also takes `texts` (TEI's name) for the documents.
    given = data.get("documents", data.get("texts"))
    if not isinstance(given, list) or not given:
        raise p.bad("'documents' must be a non-empty list of strings", "documents")
    documents = []
    for i, item in enumerate(given):
        text = item.get("text") if isinstance(item, dict) else item
        if not isinstance(text, str):
            raise p.bad(
                f"documents[{i}] must be a string or an object with a string 'text'", "documents"
            )
        if not text.strip():
            raise p.bad(f"documents[{i}] is empty: each document needs some text", "documents")
        documents.append(p.checked_text(text, f"documents[{i}]"))
    top_n = p.integer_field(data, "top_n", 1)
    # Jina and Cohere's clients send return_documents; llama-server's own name is return_text.
    returned = p.boolean_field(data, "return_documents")
    if returned is None:
        returned = p.boolean_field(data, "return_text")
    return RerankRequest(query, documents, top_n, bool(returned))


def check_reranker(name: str, path: Path) -> None:
    """A clear refusal before loading, for a model with no rank head (loading one with
    rank pooling would abort the server)."""
    from llmcli.engine.rerank import is_reranker

    if not is_reranker(path):
        raise p.ApiError(
            400,
            f"model '{name}' is not a reranker: /v1/rerank needs a reranker GGUF "
            "(rank pooling, e.g. bge-reranker or Qwen3-Reranker): name a cached one in "
            "'model', or serve one with `llmcli serve -m MODEL`",
            param="model",
            code="model_not_reranker",
        )


async def answer(request: Request, state: ServerState, asked: RerankRequest) -> Response:
    ranked = await run_in_threadpool(_rerank, state, asked)
    n_tokens = sum(r.tokens for r in ranked)
    request.scope["llmcli.note"] = f"{len(asked.documents)} document(s), {n_tokens} tokens"
    return JSONResponse(response_body(state.name, asked, ranked))


def response_body(model: str, asked: RerankRequest, ranked: list[Ranked]) -> dict[str, Any]:
    from llmcli.engine.rerank import sorted_by_score

    results = []
    for r in sorted_by_score(ranked, asked.top_n):
        item: dict[str, Any] = {"index": r.index, "relevance_score": r.score}
        if asked.return_documents:
            item["document"] = {"text": asked.documents[r.index]}
        results.append(item)
    n_tokens = sum(r.tokens for r in ranked)
    return {
        "object": "list",
        "id": p.new_id("rerank-"),
        "model": model,
        "results": results,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }


def _rerank(state: ServerState, asked: RerankRequest) -> list[Ranked]:
    from llmcli.engine.rerank import rerank

    held = state.resident
    with held.embed_lock:
        if held.reranker is None:
            held.reranker = state.load_reranker()
        return rerank(held.reranker, asked.query, asked.documents)
