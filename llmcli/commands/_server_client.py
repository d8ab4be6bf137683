"""Talking to a running `llmcli serve` on this machine, for `ps` and `stop`.

The standard library's HTTP client is enough for two small JSON requests to a local
server, and keeps these commands free of the Hub's client. The API key, when the server
needs one, comes from --api-key, LLMCLI_API_KEY or the config file, as `serve` takes it.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer

from llmcli import config
from llmcli.commands._listen import endpoint
from llmcli.errors import LlmcliError, ModelNotFoundError, NetworkError

DEFAULT_PORT = 8080
ENV_API_KEY = "LLMCLI_API_KEY"
TIMEOUT_S = 30

HostOpt = Annotated[str, typer.Option("--host", help="Address of the server.")]
PortOpt = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port of the server.")]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The server's base URL instead of --host and --port (e.g. http://127.0.0.1:8080).",
        show_default=False,
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help=f"The server's API key. Also {ENV_API_KEY} or the config file's api_key.",
        show_default=False,
    ),
]


def base_url(host: str, port: int, url: str | None) -> str:
    return (url or f"http://{endpoint(host, port)}").rstrip("/")


def call(
    base: str, path: str, *, api_key: str | None, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The server's JSON answer to GET (no body) or POST `path`; its error as one line."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, method="GET" if body is None else "POST"
    )
    request.add_header("Content-Type", "application/json")
    key = api_key or os.environ.get(ENV_API_KEY) or config.load().api_key
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        message = _error_message(exc)
        if exc.code == 404 and "model" in message:
            raise ModelNotFoundError(message) from None
        raise LlmcliError(f"the server at {base} answered {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkError(
            f"no server answers at {base} ({reason}): start one with `llmcli serve`, or "
            "name it with --host/--port or --url"
        ) from None


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return exc.reason if isinstance(exc.reason, str) else "error"
