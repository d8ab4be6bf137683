"""Deadlines for slow clients: a request's head must arrive whole within HEAD_S, and its
body may not pause for longer than BODY_IDLE_S.

uvicorn bounds only the wait between requests on a kept-alive connection, so a client
that sends its headers a byte at a time holds a connection (and a file descriptor) for
as long as it likes, and fifty such clients starve everyone. This is uvicorn's h11
protocol with two timers, driven by h11's view of the client: IDLE (the head is still
coming), SEND_BODY (the body is), anything else (answering: no deadline here).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from llmcli.serve import log
from llmcli.serve import protocol as p

HEAD_S = 10.0
BODY_IDLE_S = 60.0
# Testing: "HEAD,BODY" in seconds, so that a test need not wait the real deadlines.
ENV_DEADLINES = "LLMCLI_SERVE_DEADLINES"
# Set in the request's scope when its body was too slow, so that the handler, which
# sees the connection close, reports a timeout rather than a client that left.
TIMED_OUT = "llmcli.timed_out"


def deadlines() -> tuple[float, float]:
    value = os.environ.get(ENV_DEADLINES, "").strip()
    if not value:
        return HEAD_S, BODY_IDLE_S
    head, _, body = value.partition(",")
    return float(head), float(body or BODY_IDLE_S)


def timeout_response(message: str) -> bytes:
    body = json.dumps(p.ApiError(408, message, code="request_timeout").body()).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class DeadlineProtocol(H11Protocol):
    head_s = HEAD_S
    body_s = BODY_IDLE_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._got_head_bytes = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._watch(received=False)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch(received=True)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch(received=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _watch(self, *, received: bool) -> None:
        state = self.conn.their_state
        phase = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        # The head's deadline counts from when it could begin; the body's from its last
        # bytes.
        if phase == self._phase:
            if phase == "head":
                self._got_head_bytes |= received
            if phase != "body" or not received:
                return
        self._cancel()
        self._phase = phase
        if self.transport.is_closing():
            return
        if phase == "head":
            self._got_head_bytes = bool(self.conn.trailing_data[0])
            self._timer = self.loop.call_later(self.head_s, self._head_late)
        elif phase == "body":
            self._timer = self.loop.call_later(self.body_s, self._body_late)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_late(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        # An idle connection (a browser's spare one) just closes; a half-sent head is
        # told why.
        if self._got_head_bytes:
            self.transport.write(
                timeout_response(f"the request's head did not arrive within {self.head_s:g} s")
            )
            # A request cut before its head is whole never reaches the app, whose gate
            # logs every other request.
            client = self.client[0] if self.client else "-"
            log.line(f'{client} "-" 408 {self.head_s:.2f}s the head came too slowly')
        self.transport.close()

    def _body_late(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # the server, not the client, is behind
            self._timer = self.loop.call_later(self.body_s, self._body_late)
            return
        if self.scope is not None:
            self.scope[TIMED_OUT] = True  # type: ignore[literal-required]
        if self.conn.our_state is h11.SEND_RESPONSE:  # nothing answered yet
            self.transport.write(
                timeout_response(f"the request's body paused for over {self.body_s:g} s")
            )
        self.transport.close()


def protocol_class() -> type[asyncio.Protocol]:
    """The protocol for uvicorn.Config(http=...), with the deadlines in force now."""
    head, body = deadlines()
    attributes = {"head_s": head, "body_s": body}
    return type("Deadlines", (DeadlineProtocol,), attributes)
