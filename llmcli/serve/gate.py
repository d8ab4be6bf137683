"""The door every request passes: the API key is checked, and one line per request logged."""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmcli.serve import protocol as p

if TYPE_CHECKING:
    from llmcli.serve.state import ServerState


def error_response(exc: p.ApiError) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


class Gate:
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
                    await error_response(error)(scope, receive, sending)
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
