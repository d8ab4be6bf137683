"""The completion endpoints' answer: a job for the scheduler, relayed as it comes.

What the scheduler emits goes back as server-sent events (`"stream": true`) or as one
JSON body. A client that goes away cancels its job, which frees its sequence at the
next engine step.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from llmcli import __version__
from llmcli.engine.logprobs import TokenLogprob
from llmcli.engine.scheduler import Chunk, Job
from llmcli.engine.types import FinishReason, Sampling
from llmcli.errors import LlmcliError
from llmcli.serve import protocol as p
from llmcli.serve import tools
from llmcli.serve.relay import relay
from llmcli.serve.tools import ToolPlan

if TYPE_CHECKING:
    from llmcli.engine.vision import MediaPrompt
    from llmcli.serve.state import ServerState

FINGERPRINT = f"llmcli_{__version__}"
# Put in a job's queue when its client has gone: no more chunks are wanted.
GONE = Chunk()


async def answer(
    request: Request,
    state: ServerState,
    data: dict[str, Any],
    prompt: list[int],
    *,
    chat: bool,
    plan: ToolPlan | None = None,
    media: MediaPrompt | None = None,
) -> Response:
    """`media`: the prompt's attachments (`prompt` is its tokens); the job frees them."""
    try:
        job, queue = await _submitted(state, data, prompt, chat=chat, plan=plan, media=media)
    except BaseException:
        if media is not None:
            media.close()
        raise
    stream = data.get("stream") is True
    options = data.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    ident = p.new_id("chatcmpl" if chat else "cmpl")
    if stream:
        events = _stream(
            state,
            request,
            data,
            job,
            queue,
            ident,
            chat=chat,
            usage=include_usage,
            plan=plan,
        )
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
    return await _whole(state, request, data, job, queue, ident, chat=chat, plan=plan)


async def _submitted(
    state: ServerState,
    data: dict[str, Any],
    prompt: list[int],
    *,
    chat: bool,
    plan: ToolPlan | None,
    media: MediaPrompt | None,
) -> tuple[Job, asyncio.Queue[Chunk]]:
    """The request's sampling, grammar and logprobs, handed to the scheduler."""
    sampling = p.sampling_from(data, state.defaults, tools=chat)
    schema = p.response_schema(data)
    calls = None
    if plan is not None:
        calls = await run_in_threadpool(tools.sampling_grammar, state, plan, prompt)
    if calls is not None:
        if schema is not None:
            raise p.bad(
                "'response_format' cannot be combined with tools unless 'tool_choice' is 'none'",
                "response_format",
            )
        sampling = dataclasses.replace(sampling, grammar=calls[0], grammar_trigger=calls[1])
    if schema is not None:
        try:
            grammar = await run_in_threadpool(state.grammar_for, schema)
        except LlmcliError as exc:
            raise p.bad(str(exc), "response_format") from None
        sampling = Sampling(**{**sampling.__dict__, "grammar": grammar})
    top = p.logprobs_from(data, chat=chat)
    # A reasoning model's thinking goes to `reasoning_content`, apart from the answer.
    return submit(state, prompt, sampling, top, reasoning=chat, media=media)


def submit(
    state: ServerState,
    prompt: list[int],
    sampling: Sampling,
    top: int | None = None,
    *,
    reasoning: bool = True,
    media: MediaPrompt | None = None,
) -> tuple[Job, asyncio.Queue[Chunk]]:
    """Hand a job to the scheduler; its chunks arrive in the queue returned. Its refusals
    (too long, empty, busy, shutting down) are answered by errors.TABLE."""
    queue: asyncio.Queue[Chunk] = asyncio.Queue()
    emit = relay().sender(queue)
    job = Job(list(prompt), sampling, emit, top, reasoning=reasoning, media=media)
    state.scheduler.submit(job)
    return job, queue


class Collected:
    """A whole answer: its thinking and answer text, logprobs and why it ended."""

    def __init__(self) -> None:
        self.said: dict[str, list[str]] = {"answer": [], "thinking": []}
        self.logprobs: list[TokenLogprob] = []
        self.reason: FinishReason | None = None

    @property
    def text(self) -> str:
        return "".join(self.said["answer"])

    @property
    def thought(self) -> str:
        return "".join(self.said["thinking"]).strip()


async def collect(
    state: ServerState, request: Request, job: Job, queue: asyncio.Queue[Chunk]
) -> Collected | None:
    """The whole answer of a submitted job; None when its client left (the job is
    cancelled then, as when anything else ends the wait early)."""
    got = Collected()
    # Watched all along, not between tokens: a job whose client left is cancelled at
    # once, even while its prompt is read or its tokens keep coming.
    watch = asyncio.create_task(_client_gone(request, queue))
    try:
        while got.reason is None:
            chunk = await queue.get()
            if chunk is GONE:
                return None
            for part, piece in chunk.parts:
                got.said[part].append(piece)
            got.logprobs.extend(chunk.logprobs)
            got.reason = chunk.finish_reason
            if chunk.error:
                raise p.ApiError(500, f"the engine failed: {chunk.error}", kind="server_error")
    finally:
        watch.cancel()
        if got.reason is None:
            state.cancel(job)
    note(request, job)
    return got


def remember(
    state: ServerState,
    data: dict[str, Any],
    job: Job,
    text: str,
    thought: str,
    reason: FinishReason | None,
) -> None:
    """`serve --log`: the answer goes to the answer log, with the request's last user
    message (or prompt) and its system message."""
    if state.answer_log is None:
        return
    from llmcli.engine.types import GenerationResult

    prompt, system = p.asked(data)
    result = GenerationResult(
        text=text,
        reasoning=thought,
        finish_reason=reason or "stop",
        prompt_tokens=job.prompt_tokens,
        completion_tokens=job.completion_tokens,
        reasoning_tokens=job.reasoning_tokens,
        seed=job.seed,
        ttft_s=(job.first_token_at or job.submitted_at) - job.submitted_at,
    )
    state.answer_log.add(
        prompt=prompt,
        system=system,
        result=result,
        sampling=job.sampling,
        started=job.submitted_at,
        conversation_id=state.answer_log.new_conversation(),
    )


def note(request: Request, job: Job) -> None:
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
    data: dict[str, Any],
    job: Job,
    queue: asyncio.Queue[Chunk],
    ident: str,
    *,
    chat: bool,
    plan: ToolPlan | None,
) -> Response:
    got = await collect(state, request, job, queue)
    if got is None:
        return Response(status_code=499)
    text, thought, logprobs, reason = got.text, got.thought, got.logprobs, got.reason
    remember(state, data, job, text, thought, reason)
    if chat:
        said, called = tools.answer_message(text, plan)
        message: dict[str, Any] = {"role": "assistant", **said, "refusal": None}
        if thought:
            message["reasoning_content"] = thought
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": p.chat_logprobs(logprobs) if job.top_logprobs is not None else None,
            "finish_reason": tools.finish(reason, called),
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
            "model": state.name,
            "choices": [choice],
            "usage": _usage(job).body(),
            "system_fingerprint": FINGERPRINT,
        }
    )


async def _client_gone(request: Request, queue: asyncio.Queue[Chunk]) -> None:
    """Put GONE in the queue when the client hangs up. The body has been read: all the
    server can still receive is the disconnect."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    queue.put_nowait(GONE)


async def _stream(
    state: ServerState,
    request: Request,
    data: dict[str, Any],
    job: Job,
    queue: asyncio.Queue[Chunk],
    ident: str,
    *,
    chat: bool,
    usage: bool,
    plan: ToolPlan | None,
) -> AsyncIterator[str]:
    import json

    created = p.now()
    kind = "chat.completion.chunk" if chat else "text_completion"

    def event(choices: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> str:
        body = {
            "id": ident,
            "object": kind,
            "created": created,
            "model": state.name,
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
    said: dict[str, list[str]] = {"answer": [], "thinking": []}
    calls = tools.StreamedCalls(plan) if plan is not None and plan.choice != "none" else None

    def deltas(part: str, text: str) -> list[dict[str, Any]]:
        if part == "thinking":
            return [{"reasoning_content": text}]
        return calls.feed(text) if calls is not None else [{"content": text}]

    def chunk_events(chunk: Chunk) -> list[str]:
        out: list[str] = []
        # The token's logprobs go with the first text it released, or alone.
        if chunk.logprobs and not chunk.parts:
            out.append(event([choice("", chunk.logprobs, None)]))
        pending_logprobs = chunk.logprobs
        for part, text in chunk.parts:
            said[part].append(text)
            if not chat:
                out.append(event([choice(text, pending_logprobs, None)]))
                pending_logprobs = []
                continue
            for delta in deltas(part, text):
                item = choice(None, pending_logprobs, None)
                item["delta"] = delta
                pending_logprobs = []
                out.append(event([item]))
        if pending_logprobs and chunk.parts:  # text held back (a call being written)
            out.append(event([choice("", pending_logprobs, None)]))
        if chunk.finish_reason is not None:
            reason = p.finish(chunk.finish_reason)
            if calls is not None:
                for delta in calls.flush():
                    out.append(event([{**choice(None, [], None), "delta": delta}]))
                reason = tools.finish(chunk.finish_reason, calls.called)
            out.append(event([choice(None if chat else "", [], reason)]))
            answer, thought = "".join(said["answer"]), "".join(said["thinking"]).strip()
            remember(state, data, job, answer, thought, chunk.finish_reason)
        return out

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
            # All that has arrived goes out in one write: a client that reads slowly,
            # or a loop that fell behind a step, costs one send, not one per token.
            out: list[str] = []
            chunk = await queue.get()
            while True:
                finished = chunk.finish_reason is not None
                out += chunk_events(chunk)
                if finished or queue.empty():
                    break
                chunk = queue.get_nowait()
            if finished:
                if usage:
                    out.append(event([], {"usage": _usage(job).body()}))
                out.append("data: [DONE]\n\n")
            if out:
                yield "".join(out)
    finally:
        if not finished:
            state.cancel(job)
        note(request, job)
