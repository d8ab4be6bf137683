"""The HTTP side of `llmcli serve`: OpenAI's endpoints over the scheduler, on Starlette.

Handlers parse and check a request (protocol.py) and render the prompt; completions.py
hands the job to the scheduler and relays its answer, embeddings.py answers
`/v1/embeddings`, and gate.py checks the API key and logs every request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from llmcli.engine.model import Model
from llmcli.engine.reasoning import Thinking
from llmcli.errors import LlmcliError
from llmcli.serve import completions, embeddings
from llmcli.serve import protocol as p
from llmcli.serve.gate import Gate, error_response
from llmcli.serve.state import ServerState


def build_app(state: ServerState) -> ASGIApp:
    async def health(request: Request) -> Response:
        active, waiting = state.scheduler.load()
        return JSONResponse(
            {"status": "ok", "model": state.served_name, "active": active, "waiting": waiting}
        )

    async def models(request: Request) -> Response:
        names = [state.served_name] + [n for n in state.cached_models() if not state.same_model(n)]
        created = int(state.started)
        data = [
            {"id": n, "object": "model", "created": created, "owned_by": "llmcli", "loaded": i == 0}
            for i, n in enumerate(names)
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request) -> Response:
        data = await _json_body(request, state)
        p.refuse_unsupported(data)
        _check_model(state, data)
        messages = p.messages_from(data)
        thinking = p.thinking_from(data)
        job_prompt = await run_in_threadpool(_chat_tokens, state.model, messages, thinking)
        return await completions.answer(request, state, data, job_prompt, chat=True)

    async def complete(request: Request) -> Response:
        data = await _json_body(request, state)
        p.refuse_unsupported(data)
        _check_model(state, data)
        text = p.prompt_from(data)
        tokens = await run_in_threadpool(state.model.completion_tokens, text)
        return await completions.answer(request, state, data, tokens, chat=False)

    async def embed(request: Request) -> Response:
        data = await _json_body(request, state)
        _check_model(state, data)
        return await embeddings.answer(request, state, data)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", _guarded(chat), methods=["POST"]),
        Route("/v1/completions", _guarded(complete), methods=["POST"]),
        Route("/v1/embeddings", _guarded(embed), methods=["POST"]),
    ]
    app = Starlette(routes=routes)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(p.ApiError(404, f"no such endpoint: {request.url.path}"))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error_response(p.ApiError(405, f"{request.method} is not allowed here"))

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_allowed)
    return Gate(app, state)


def _guarded(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except p.ApiError as exc:
            return error_response(exc)

    return run


async def _json_body(request: Request, state: ServerState) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    limit = state.max_body_bytes
    too_big = p.ApiError(413, f"the request body is larger than {limit} bytes")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise too_big
    return p.parse_json(bytes(body))


def _check_model(state: ServerState, data: dict[str, Any]) -> None:
    name = data.get("model")
    if name in (None, "") or name == state.served_name:
        return
    if not isinstance(name, str):
        raise p.bad("'model' must be a string", "model")
    if state.same_model(name):
        return
    if name in state.cached_models():
        raise p.ApiError(
            404,
            f"model '{name}' is not loaded: this server runs '{state.served_name}' "
            f"(start another with `llmcli serve -m {name}`)",
            param="model",
            code="model_not_found",
        )
    raise p.ApiError(404, f"model '{name}' not found", param="model", code="model_not_found")


def _chat_tokens(model: Model, messages: list[Any], thinking: Thinking) -> list[int]:
    try:
        return model.chat_tokens(messages, thinking=thinking)
    except LlmcliError as exc:
        raise p.bad(str(exc), "messages") from None
    except Exception as exc:  # templates raise what Jinja raises (e.g. roles out of order)
        raise p.bad(
            f"the model's chat template refused these messages: {exc}", "messages"
        ) from None
