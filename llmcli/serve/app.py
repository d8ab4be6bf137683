"""The HTTP side of `llmcli serve`: OpenAI's endpoints over the scheduler, on Starlette.

Handlers parse and check a request (protocol.py) and render the prompt; completions.py
hands the job to the scheduler and relays its answer, embeddings.py answers
`/v1/embeddings`, gate.py checks what browsers and callers may send and logs every
request, and deadlines.py cuts clients that send too slowly. Handlers raise; whatever
they raise is answered at one place, by the table in errors.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmcli.engine.model import Model
from llmcli.engine.reasoning import Thinking
from llmcli.errors import LlmcliError
from llmcli.serve import anthropic as a
from llmcli.serve import completions, embeddings, errors, messages, rerank, tools
from llmcli.serve import protocol as p
from llmcli.serve.deadlines import TIMED_OUT
from llmcli.serve.gate import Gate, error_response
from llmcli.serve.residency import KeepAlive
from llmcli.serve.state import ServerState

if TYPE_CHECKING:
    from llmcli.engine.vision import MediaPrompt


def build_app(state: ServerState) -> ASGIApp:
    async def health(request: Request) -> Response:
        active, waiting = state.residency.load_counts()
        return JSONResponse(
            {"status": "ok", "model": state.default_name, "active": active, "waiting": waiting}
        )

    async def models(request: Request) -> Response:
        names, loaded = await run_in_threadpool(_servable, state)
        created = int(state.started)
        data = [
            {
                "id": n,
                "object": "model",
                "created": created,
                "owned_by": "llmcli",
                "loaded": n in loaded,
                "status": "loaded" if n in loaded else "available",
                "default": n == state.default_name,
            }
            for n in names
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request) -> Response:
        data = await _json_body(request, state)
        p.refuse_unsupported(data, tools=True)
        async with _holding(request, state, data) as held:
            return await _chat(request, held, data)

    async def _chat(request: Request, state: ServerState, data: dict[str, Any]) -> Response:
        plan = tools.plan_from(data, state.call_format())
        found: list[tuple[str, bytes | str]] = []
        messages = p.messages_from(
            data, tools.history_fields, found, remote_media=state.allow_remote_media
        )
        thinking = p.thinking_from(data)
        if plan is not None and plan.forced:
            # The grammar holds the answer to calls from its first token: no thinking.
            thinking = Thinking(enabled=False)
        # A template may trim what it is given, drop the thinking of earlier answers or
        # fold system messages away: only what the user said is sure to stay.
        kept = [m["content"].strip() for m in messages if m["role"] in ("user", "tool")]
        await _check_size(state, kept, "messages")
        template_tools = None
        if plan is not None:
            messages, template_tools = tools.prompt_inputs(plan, messages)
        attached = await _fetched(found) if found else []
        if attached:
            media = await run_in_threadpool(
                media_prompt, state.model, messages, thinking, template_tools, attached
            )
            return await completions.answer(
                request, state, data, media.tokens, chat=True, plan=plan, media=media
            )
        job_prompt = await run_in_threadpool(
            _chat_tokens, state.model, messages, thinking, template_tools
        )
        return await completions.answer(request, state, data, job_prompt, chat=True, plan=plan)

    async def complete(request: Request) -> Response:
        data = await _json_body(request, state)
        p.refuse_unsupported(data)
        text = p.prompt_from(data)
        async with _holding(request, state, data) as held:
            await _check_size(held, [text], "prompt")
            tokens = await run_in_threadpool(held.model.completion_tokens, text)
            return await completions.answer(request, held, data, tokens, chat=False)

    async def embed(request: Request) -> Response:
        data = await _json_body(request, state)
        texts, _ = p.embedding_inputs(data)
        async with _holding(request, state, data) as held:
            await _check_size(held, texts, "input", each=True)
            return await embeddings.answer(request, held, data)

    async def rank(request: Request) -> Response:
        data = await _json_body(request, state)
        asked = rerank.request_from(data)
        # Each document is read with the query: the longest pair is the one to check.
        longest = max(asked.documents, key=len)
        async with _holding(request, state, data, check=rerank.check_reranker) as held:
            await _check_size(held, [asked.query, longest], "documents")
            return await rerank.answer(request, held, asked)

    async def anthropic_messages(request: Request) -> Response:
        data = await _json_body(request, state)
        asked = a.request_from(data, state.defaults)
        kept = [m["content"].strip() for m in asked.messages if m["role"] == "user"]
        async with _holding(request, state, data) as held:
            await _check_size(held, kept, "messages")
            tokens = await run_in_threadpool(
                _chat_tokens, held.model, asked.messages, asked.thinking
            )
            return await messages.answer(request, held, asked, tokens)

    async def count_tokens(request: Request) -> Response:
        data = await _json_body(request, state)
        chat, thinking = a.count_request_from(data)
        kept = [m["content"].strip() for m in chat if m["role"] == "user"]
        async with _holding(request, state, data) as held:
            await _check_size(held, kept, "messages")
            tokens = await run_in_threadpool(_chat_tokens, held.model, chat, thinking)
            return JSONResponse({"input_tokens": len(tokens)})

    async def ps(request: Request) -> Response:
        loaded = await run_in_threadpool(state.residency.describe)
        return JSONResponse({"models": loaded})

    async def stop_model(request: Request) -> Response:
        data = await _json_body(request, state)
        name = data.get("model")
        if not isinstance(name, str) or not name:
            raise p.bad("'model' must name the model to unload", "model")
        found, _ = await run_in_threadpool(_find, state, name)
        loaded, done = await run_in_threadpool(state.residency.stop, found)
        return JSONResponse({"model": found, "was_loaded": loaded, "unloaded": done})

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/api/ps", ps, methods=["GET"]),
        Route("/api/stop", stop_model, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", complete, methods=["POST"]),
        Route("/v1/embeddings", embed, methods=["POST"]),
        Route("/v1/rerank", rank, methods=["POST"]),
        Route("/rerank", rank, methods=["POST"]),
        Route("/v1/messages", anthropic_messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    ]
    # Inside Starlette's own last resort, which would answer in plain text and then
    # hand the exception to uvicorn to log a second time.
    app = Starlette(routes=routes, middleware=[Middleware(ErrorAnswers)])

    async def not_found(request: Request, exc: Exception) -> Response:
        error = p.ApiError(404, f"no such endpoint: {request.url.path}")
        return error_response(error, request.url.path)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        error = p.ApiError(405, f"{request.method} is not allowed here")
        return error_response(error, request.url.path)

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_allowed)
    return Gate(app, state)


class ErrorAnswers:
    """Answers whatever a handler raises with OpenAI's error object (errors.TABLE)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:  # a stream already under way: no status can be given any more
                raise
            error = errors.api_error(exc, scope["method"], scope["path"])
            await error_response(error, scope["path"])(scope, receive, send)


@asynccontextmanager
async def _holding(
    request: Request,
    state: ServerState,
    data: dict[str, Any],
    *,
    check: Callable[[str, Path], None] | None = None,
) -> AsyncIterator[ServerState]:
    """The one way every endpoint reaches a model: the model the request's `model` names
    (the default when it names none) stays loaded (loaded first if it is not) while the
    block runs, which works on the state bound to it; a stream it starts keeps it loaded
    through the scheduler's own count. `check` may refuse the model before it loads."""
    keep = _keep_alive(data)
    name, path = await run_in_threadpool(_find, state, data.get("model"))
    if check is not None:
        check(name, path)
    resident = await run_in_threadpool(state.residency.acquire, name, path, keep)
    # The request's log line (gate.py) names the model that answered it.
    request.scope["llmcli.model"] = name
    try:
        yield state.holding(resident)
    finally:
        await run_in_threadpool(state.residency.release, resident)


def _servable(state: ServerState) -> tuple[list[str], list[str]]:
    """Every model a request may name (the default, then what `llmcli list` shows, then
    any other loaded), and those loaded."""
    loaded = state.residency.names()
    names = [state.default_name]
    names += [n for n in state.cached_models() if n not in names and not state.is_default(n)]
    names += [n for n in loaded if n not in names]
    return names, loaded


def _find(state: ServerState, name: object) -> tuple[str, Path]:
    """The model a request's `model` field names, as (its name, its file)."""
    if name in (None, ""):
        return state.default_name, state.default_path
    if not isinstance(name, str):
        raise p.bad("'model' must be a string", "model")
    found = state.find_model(name)
    if found is None:
        raise p.ApiError(
            404,
            f"model '{name}' not found: this server answers the models `llmcli list` shows "
            "(GET /v1/models lists them)",
            param="model",
            code="model_not_found",
        )
    return found


def _keep_alive(data: dict[str, Any]) -> KeepAlive | None:
    """A request's `keep_alive`, as ollama takes it (`5m`, seconds, 0, -1)."""
    value = data.get("keep_alive")
    if value is None:
        return None
    from llmcli.humanize import parse_keep_alive

    if not isinstance(value, str | int | float):
        raise p.bad("'keep_alive' must be a duration (e.g. \"5m\") or seconds", "keep_alive")
    try:
        return KeepAlive(parse_keep_alive(value))
    except ValueError as exc:
        raise p.bad(f"'keep_alive': {exc}", "keep_alive") from None


async def _json_body(request: Request, state: ServerState) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    limit = state.max_body_bytes
    too_big = p.ApiError(413, f"the request body is larger than {limit} bytes")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    try:
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise too_big
    except ClientDisconnect:
        # Nobody is left to answer; the status is for the log (499: client closed request).
        if request.scope.get(TIMED_OUT):
            raise p.ApiError(408, "the request's body came too slowly") from None
        raise p.ApiError(499, "the client closed the connection before sending its body") from None
    return p.parse_json(bytes(body))


async def _check_size(
    state: ServerState, texts: list[str], param: str, *, each: bool = False
) -> None:
    """Refuse, before tokenizing, text too long for the context whatever its tokens:
    tokenizing megabytes takes seconds and memory, only to be refused after."""
    held = state.resident
    if held.max_token_bytes is None:
        from llmcli.engine.vocab import max_token_bytes

        held.max_token_bytes = await run_in_threadpool(max_token_bytes, held.model)
    limit = held.max_token_bytes
    if not limit:
        return
    embedder = held.embedder if param == "input" else None
    n_ctx = embedder.n_ctx if embedder is not None else state.scheduler.ctx_per_sequence
    sizes = [len(t.encode("utf-8", "surrogatepass")) for t in texts]
    size = max(sizes) if each else sum(sizes)
    if size > n_ctx * limit:
        what = "a text" if each else "the prompt"
        raise p.bad(
            f"{what} is {size} bytes, more than the context window's {n_ctx} tokens can "
            f"hold (at most {limit} bytes each)",
            param,
            "context_length_exceeded",
        )


async def _fetched(found: list[tuple[str, bytes | str]]) -> list[tuple[str, bytes]]:
    """The attached parts' bytes; remote images are fetched on a worker thread."""
    from llmcli.serve.media import PartError, fetched

    try:
        return await run_in_threadpool(fetched, found)
    except PartError as exc:
        raise p.bad(str(exc), exc.field) from None


def media_prompt(
    model: Model,
    messages: list[Any],
    thinking: Thinking,
    tools: list[dict[str, Any]] | None,
    attached: list[tuple[str, bytes]],
) -> MediaPrompt:
    """The prompt of a chat request with images or audio, expanded by the projector."""
    from llmcli.engine.vision import Attachment

    if model.projector is None:
        raise p.bad(
            "this model has no projector (mmproj): it cannot read images or audio",
            attached[0][0],
            code="model_not_multimodal",
        )
    try:
        tokens, _ = model.tokenizer.chat_prompt(
            messages, thinking=thinking, tools=tools, media=True
        )
        return model.media_prompt(tokens, [Attachment(name, data) for name, data in attached])
    except LlmcliError as exc:
        raise p.bad(str(exc), "messages") from None


def _chat_tokens(
    model: Model,
    messages: list[Any],
    thinking: Thinking,
    tools: list[dict[str, Any]] | None = None,
) -> list[int]:
    try:
        return model.chat_tokens(messages, thinking=thinking, tools=tools)
    except LlmcliError as exc:
        raise p.bad(str(exc), "messages") from None
    except Exception as exc:  # templates raise what Jinja raises (e.g. roles out of order)
        raise p.bad(
            f"the model's chat template refused these messages: {exc}", "messages"
        ) from None
