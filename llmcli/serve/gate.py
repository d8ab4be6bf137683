"""The door every request passes: what browsers may send (guard.py), the API key, and
one log line per request."""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmcli.serve import anthropic, guard, log
from llmcli.serve import protocol as p

if TYPE_CHECKING:
    from llmcli.serve.state import ServerState


def error_response(exc: p.ApiError, path: str) -> Response:
    """The error in the shape of the API the path belongs to: Anthropic's for its
    Messages endpoints, OpenAI's for the rest."""
    body = anthropic.error_body(exc) if path in anthropic.PATHS else exc.body()
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


class Gate:
    """Checks the request's Host, Origin, content type and API key before any handler
    runs, answers browsers' preflight requests, and logs one line per request."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state
        self.key = state.api_key.encode() if state.api_key else None
        self.policy = guard.Policy.make(
            keyed=self.key is not None,
            bound_host=state.bound_host,
            hosts=state.allowed_hosts,
            origins=state.cors_origins,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [0]
        extra: list[tuple[bytes, bytes]] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                if extra:
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            refusal, answer = self._check(scope, headers, extra)
            if refusal is not None:
                await error_response(refusal, scope["path"])(scope, receive, sending)
            elif answer is not None:
                await answer(scope, receive, sending)
            else:
                await self.app(scope, receive, sending)
        finally:
            client = scope.get("client") or ("-", 0)
            note = scope.get("llmcli.note")
            model = scope.get("llmcli.model")
            took = time.perf_counter() - start
            log.line(
                f'{client[0]} "{scope["method"]} {scope["path"]}" {status[0] or 499} '
                f"{took:.2f}s" + (f" {note}" if note else "") + (f" [{model}]" if model else "")
            )

    def _check(
        self, scope: Scope, headers: dict[str, str], extra: list[tuple[bytes, bytes]]
    ) -> tuple[p.ApiError | None, Response | None]:
        """A refusal, or a whole answer (a preflight), or neither: go on. Adds to `extra`
        the headers every response to this request carries."""
        host = headers.get("host")
        if not guard.host_allowed(self.policy, host):
            return p.ApiError(
                403,
                f"Host '{host}' is not a name of this server; allow it with --allowed-host "
                f"{guard.host_name(host or '')}",
                code="host_not_allowed",
            ), None
        origin = headers.get("origin")
        if origin is not None:
            if not guard.origin_allowed(self.policy, origin, host):
                return p.ApiError(
                    403,
                    f"requests from web pages at {origin} are not allowed; allow them with "
                    f"--cors-origin {origin}",
                    code="origin_not_allowed",
                ), None
            cors = guard.cors_headers(origin)
            extra += [(k.lower().encode(), v.encode()) for k, v in cors.items()]
            method = headers.get("access-control-request-method")
            if scope["method"] == "OPTIONS" and method is not None:
                requested = headers.get("access-control-request-headers")
                return None, Response(status_code=204, headers=guard.preflight_headers(requested))
        if self.key is not None and scope["path"] != "/health" and not self._key_ok(headers):
            return p.ApiError(
                401,
                "a valid API key is needed: 'Authorization: Bearer KEY' or 'x-api-key: KEY'",
                code="invalid_api_key",
            ), None
        content_type = headers.get("content-type")
        if scope["method"] == "POST" and not guard.is_json(content_type):
            return p.ApiError(
                415,
                f"the request body must be JSON: send 'Content-Type: {guard.JSON_TYPE}' "
                f"(curl: -H), not {content_type}",
                code="unsupported_media_type",
            ), None
        return None, None

    def _key_ok(self, headers: dict[str, str]) -> bool:
        assert self.key is not None
        # Anthropic's clients send the key as x-api-key, OpenAI's as a bearer token.
        given = headers.get("x-api-key")
        if given is None:
            scheme, _, given = headers.get("authorization", "").strip().partition(" ")
            # The scheme is case-insensitive (RFC 7235).
            if scheme.lower() != "bearer":
                return False
        # Compared in constant time; the key never reaches the log.
        return hmac.compare_digest(given.strip().encode("latin-1"), self.key)
