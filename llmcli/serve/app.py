"""The HTTP side of `llmcli serve`: OpenAI's endpoints over the scheduler, on Starlette.

Handlers parse and check a request (protocol.py), render the prompt, hand a job to the
scheduler and relay what it emits, as server-sent events or one JSON body. A client that
goes away cancels its job, which frees its sequence at the next engine step.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmcli import __version__
from llmcli.engine.model import Model
from llmcli.engine.reasoning import Splitter, Thinking, split_whole
from llmcli.engine.scheduler import Chunk, Job, QueueFullError, Scheduler
from llmcli.engine.types import Sampling
from llmcli.errors import ContextOverflowError, LlmcliError
from llmcli.serve import protocol as p

RETRY_AFTER_S = 1
FINGERPRINT = f"llmcli_{__version__}"
# How often a handler waiting for a whole answer checks that its client is still there.
DISCONNECT_POLL_S = 0.25


@dataclass
class ServerState:
    model: Model
    scheduler: Scheduler
    served_name: str
    same_model: Callable[[str], bool]
    cached_models: Callable[[], list[str]]
    defaults: Sampling
    api_key: str | None
    max_body_bytes: int
    log: Callable[[str], None]
    load_embedder: Callable[[], Model]
    grammar_for: Callable[[dict[str, Any]], str]
    embedder: Model | None = None
    embed_lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.time)


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
        return await _answer(request, state, data, job_prompt, chat=True)

    async def completions(request: Request) -> Response:
        data = await _json_body(request, state)
        p.refuse_unsupported(data)
        _check_model(state, data)
        text = p.prompt_from(data)
        tokens = await run_in_threadpool(state.model.completion_tokens, text)
        return await _answer(request, state, data, tokens, chat=False)

    async def embeddings(request: Request) -> Response:
        data = await _json_body(request, state)
        _check_model(state, data)
        texts, as_base64 = p.embedding_inputs(data)
        vectors, n_tokens = await run_in_threadpool(_embed, state, texts)
        request.scope["llmcli.note"] = f"{len(texts)} input(s), {n_tokens} tokens"
        return JSONResponse(
            {
                "object": "list",
                "model": state.served_name,
                "data": [
                    {"object": "embedding", "index": i, "embedding": p.encode_vector(v, as_base64)}
                    for i, v in enumerate(vectors)
                ],
                "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
            }
        )

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", _guarded(chat), methods=["POST"]),
        Route("/v1/completions", _guarded(completions), methods=["POST"]),
        Route("/v1/embeddings", _guarded(embeddings), methods=["POST"]),
    ]
    app = Starlette(routes=routes)

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error_response(p.ApiError(404, f"no such endpoint: {request.url.path}"))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _error_response(p.ApiError(405, f"{request.method} is not allowed here"))

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_allowed)
    return _Gate(app, state)


def _guarded(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except p.ApiError as exc:
            return _error_response(exc)

    return run


def _error_response(exc: p.ApiError) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


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


def _embed(state: ServerState, texts: list[str]) -> tuple[list[list[float]], int]:
    from llmcli.engine.vectors import embed

    with state.embed_lock:
        if state.embedder is None:
            state.embedder = state.load_embedder()
        model = state.embedder
        n_tokens = sum(len(model.tokenize(t)) for t in texts)
        try:
            return embed(model, texts), n_tokens
        except ContextOverflowError as exc:
            raise p.bad(str(exc), "input", "context_length_exceeded") from None


async def _answer(
    request: Request, state: ServerState, data: dict[str, Any], prompt: list[int], *, chat: bool
) -> Response:
    sampling = p.sampling_from(data, state.defaults)
    schema = p.response_schema(data)
    if schema is not None:
        try:
            grammar = await run_in_threadpool(state.grammar_for, schema)
        except LlmcliError as exc:
            raise p.bad(str(exc), "response_format") from None
        sampling = Sampling(**{**sampling.__dict__, "grammar": grammar})
    top = p.logprobs_from(data, chat=chat)
    stream = data.get("stream") is True
    options = data.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Chunk] = asyncio.Queue()

    def emit(chunk: Chunk) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, chunk)

    job = Job(list(prompt), sampling, emit, top)
    try:
        state.scheduler.submit(job)
    except ContextOverflowError as exc:
        raise p.bad(str(exc), "messages" if chat else "prompt", "context_length_exceeded") from None
    except QueueFullError as exc:
        raise p.ApiError(
            503,
            f"the server is busy: {exc}; retry shortly",
            kind="server_error",
            code="server_busy",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from None
    except LlmcliError as exc:
        raise p.ApiError(503, str(exc), kind="server_error") from None
    ident = p.new_id("chatcmpl" if chat else "cmpl")
    # A reasoning model's thinking goes to `reasoning_content`, apart from the answer.
    splitter = state.model.splitter(prompt) if chat else None
    if stream:
        events = _stream(
            state, request, job, queue, ident, chat=chat, usage=include_usage, splitter=splitter
        )
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
    return await _whole(state, request, job, queue, ident, chat=chat, splitter=splitter)


def _note(request: Request, job: Job) -> None:
    ttft = (job.first_token_at - job.submitted_at) if job.first_token_at else 0.0
    request.scope["llmcli.note"] = (
        f"{job.prompt_tokens} prompt ({job.cached_tokens} cached) + "
        f"{job.completion_tokens} tokens, first after {ttft:.2f}s"
    )


def _usage(job: Job) -> p.Usage:
    return p.Usage(job.prompt_tokens, job.completion_tokens, job.cached_tokens)


async def _whole(
    state: ServerState,
    request: Request,
    job: Job,
    queue: asyncio.Queue[Chunk],
    ident: str,
    *,
    chat: bool,
    splitter: Splitter | None,
) -> Response:
    parts: list[str] = []
    logprobs = []
    reason: str | None = None
    try:
        while reason is None:
            try:
                chunk = await asyncio.wait_for(queue.get(), DISCONNECT_POLL_S)
            except TimeoutError:
                if await request.is_disconnected():
                    state.scheduler.cancel(job)
                    return Response(status_code=499)
                continue
            parts.append(chunk.text)
            logprobs.extend(chunk.logprobs)
            reason = chunk.finish_reason
            if chunk.error:
                raise p.ApiError(500, f"the engine failed: {chunk.error}", kind="server_error")
    finally:
        if reason is None:
            state.scheduler.cancel(job)
    _note(request, job)
    text = "".join(parts)
    text, thought = split_whole(splitter, text)
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if thought:
            message["reasoning_content"] = thought
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": p.chat_logprobs(logprobs) if job.top_logprobs is not None else None,
            "finish_reason": p.finish(reason),
        }
        kind = "chat.completion"
    else:
        choice = {
            "index": 0,
            "text": text,
            "logprobs": p.completion_logprobs(logprobs, 0)
            if job.top_logprobs is not None
            else None,
            "finish_reason": p.finish(reason),
        }
        kind = "text_completion"
    return JSONResponse(
        {
            "id": ident,
            "object": kind,
            "created": p.now(),
            "model": state.served_name,
            "choices": [choice],
            "usage": _usage(job).body(),
            "system_fingerprint": FINGERPRINT,
        }
    )


async def _stream(
    state: ServerState,
    request: Request,
    job: Job,
    queue: asyncio.Queue[Chunk],
    ident: str,
    *,
    chat: bool,
    usage: bool,
    splitter: Splitter | None,
) -> AsyncIterator[str]:
    import json

    created = p.now()
    kind = "chat.completion.chunk" if chat else "text_completion"

    def event(choices: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> str:
        body = {
            "id": ident,
            "object": kind,
            "created": created,
            "model": state.served_name,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        }
        if extra:
            body.update(extra)
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def choice(text: str | None, logprobs: list[Any], reason: str | None) -> dict[str, Any]:
        if chat:
            delta: dict[str, Any] = {} if text is None else {"content": text}
            lp = p.chat_logprobs(logprobs) if logprobs else None
            return {"index": 0, "delta": delta, "logprobs": lp, "finish_reason": reason}
        lp = p.completion_logprobs(logprobs, 0) if logprobs else None
        return {"index": 0, "text": text or "", "logprobs": lp, "finish_reason": reason}

    finished = False
    try:
        if chat:
            yield event(
                [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ]
            )
        while not finished:
            chunk = await queue.get()
            finished = chunk.finish_reason is not None
            if splitter is None:
                if chunk.text or chunk.logprobs:
                    yield event([choice(chunk.text, chunk.logprobs, None)])
            else:
                split = splitter.feed(chunk.text) if chunk.text else []
                if finished:
                    split += splitter.flush()
                for i, (kind, text) in enumerate(split):
                    item = choice(text, chunk.logprobs if i == 0 else [], None)
                    if kind == "thinking":
                        item["delta"] = {"reasoning_content": text}
                    yield event([item])
            if finished:
                yield event([choice(None if chat else "", [], p.finish(chunk.finish_reason))])
        if usage:
            yield event([], {"usage": _usage(job).body()})
        yield "data: [DONE]\n\n"
    finally:
        if not finished:
            state.scheduler.cancel(job)
        _note(request, job)


class _Gate:
    """Checks the API key before any handler runs and logs one line per request."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state
        self.expected = f"Bearer {state.api_key}".encode() if state.api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [0]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if self.expected is not None and scope["path"] != "/health":
                given = dict(scope["headers"]).get(b"authorization", b"")
                # Compared in constant time; the key itself never reaches the log.
                if not hmac.compare_digest(given, self.expected):
                    error = p.ApiError(
                        401,
                        "a valid API key is needed: 'Authorization: Bearer KEY'",
                        code="invalid_api_key",
                    )
                    await _error_response(error)(scope, receive, sending)
                    return
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client") or ("-", 0)
            note = scope.get("llmcli.note")
            took = time.perf_counter() - start
            self.state.log(
                f'{client[0]} "{scope["method"]} {scope["path"]}" {status[0] or 499} '
                f"{took:.2f}s" + (f" {note}" if note else "")
            )
