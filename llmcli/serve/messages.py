"""`POST /v1/messages`: Anthropic's Messages API over the same scheduler, chat template
and answer log as `/v1/chat/completions`, for clients that speak Anthropic's protocol.

A whole answer is one message object; a streamed one is Anthropic's events
(message_start, a content block per kind of text, its deltas, message_delta with the
stop reason, message_stop). A reasoning model's thinking is a `thinking` block before
the `text` block.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from llmcli.engine.scheduler import Chunk, Job
from llmcli.serve import anthropic as a
from llmcli.serve import completions
from llmcli.serve import protocol as p

if TYPE_CHECKING:
    from llmcli.serve.state import ServerState


async def answer(
    request: Request,
    state: ServerState,
    asked: a.MessagesRequest,
    prompt: list[int],
) -> Response:
    job, queue = completions.submit(state, prompt, asked.sampling)
    ident = p.new_id("msg").replace("-", "_")
    # The answer log reads the request as the chat endpoint's.
    logged = {"messages": asked.messages}
    if asked.stream:
        events = _events(state, request, logged, job, queue, ident)
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
    got = await completions.collect(state, request, job, queue)
    if got is None:
        return Response(status_code=499)
    completions.remember(state, logged, job, got.text, got.thought, got.reason)
    return JSONResponse(
        a.message(
            ident,
            state.name,
            a.content(got.text, got.thought),
            stop_reason=a.stop_reason(got.reason, job.stop_sequence),
            stop_sequence=job.stop_sequence,
            usage=a.usage(job.prompt_tokens, job.cached_tokens, job.completion_tokens),
        )
    )


def _event(kind: str, body: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **body}, ensure_ascii=False)}\n\n"


class _Blocks:
    """The content blocks of a streamed message: one open at a time, a new one each time
    the kind of text changes (thinking, then the answer)."""

    def __init__(self) -> None:
        self.index = -1
        self.open: str | None = None

    def text(self, kind: str, text: str) -> list[str]:
        block = "thinking" if kind == "thinking" else "text"
        out = [] if self.open == block else [*self.close(), *self._start(block)]
        if block == "thinking":
            delta = {"type": "thinking_delta", "thinking": text}
        else:
            delta = {"type": "text_delta", "text": text}
        return [*out, _event("content_block_delta", {"index": self.index, "delta": delta})]

    def close(self) -> list[str]:
        if self.open is None:
            return []
        out = []
        if self.open == "thinking":
            delta = {"type": "signature_delta", "signature": ""}
            out.append(_event("content_block_delta", {"index": self.index, "delta": delta}))
        out.append(_event("content_block_stop", {"index": self.index}))
        self.open = None
        return out

    def _start(self, block: str) -> list[str]:
        self.index += 1
        self.open = block
        empty = {"type": "thinking", "thinking": "", "signature": ""}
        start = empty if block == "thinking" else {"type": "text", "text": ""}
        return [_event("content_block_start", {"index": self.index, "content_block": start})]


async def _events(
    state: ServerState,
    request: Request,
    logged: dict[str, Any],
    job: Job,
    queue: asyncio.Queue[Chunk],
    ident: str,
) -> AsyncIterator[str]:
    finished = False
    blocks = _Blocks()
    said: dict[str, list[str]] = {"answer": [], "thinking": []}
    try:
        start = a.message(ident, state.name, [], usage=a.usage(len(job.prompt), 0, 0))
        yield _event("message_start", {"message": start})
        while not finished:
            chunk = await queue.get()
            finished = chunk.finish_reason is not None
            if chunk.error:
                error = p.ApiError(500, f"the engine failed: {chunk.error}")
                yield _event("error", {"error": a.error_body(error)["error"]})
                return
            for kind, text in chunk.parts:
                said[kind].append(text)
                for event in blocks.text(kind, text):
                    yield event
        if blocks.index < 0 or (blocks.open == "thinking" and not said["answer"]):
            # Every message has its text block, even an empty one.
            for event in blocks.text("answer", ""):
                yield event
        for event in blocks.close():
            yield event
        answer, thought = "".join(said["answer"]), "".join(said["thinking"]).strip()
        completions.remember(state, logged, job, answer, thought, chunk.finish_reason)
        delta = {
            "stop_reason": a.stop_reason(chunk.finish_reason, job.stop_sequence),
            "stop_sequence": job.stop_sequence,
        }
        used = a.usage(job.prompt_tokens, job.cached_tokens, job.completion_tokens)
        yield _event("message_delta", {"delta": delta, "usage": used})
        yield _event("message_stop", {})
    finally:
        if not finished:
            state.cancel(job)
        completions.note(request, job)
