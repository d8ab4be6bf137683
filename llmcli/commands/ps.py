"""`llmcli ps` and `llmcli stop`: what a running server has loaded, and unloading it."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from llmcli.commands import _server_client as client
from llmcli.humanize import format_bytes, format_seconds
from llmcli.ui import console

PS_EPILOG = """\
Examples:

  llmcli ps

  llmcli ps --port 8081 --json | jq '.models[].name'

One line per loaded model, the most recently used first. Columns: the model's name,
its memory (estimated: weights, KV cache of every sequence, compute buffer), sequences
answering of those it has (parallel slots), requests waiting, how long it has been idle,
and when it unloads (--keep-alive, or a request's keep_alive).
"""

STOP_EPILOG = """\
Examples:

  llmcli stop smollm2

  llmcli stop --url http://127.0.0.1:8081 ./model.gguf

The server stays up: the next request for the model loads it again. A model answering
requests unloads as soon as they end.
"""


def register(app: typer.Typer) -> None:
    app.command(
        "ps",
        help="Show what a running `llmcli serve` on this machine has loaded.",
        epilog=PS_EPILOG,
    )(ps)
    app.command(
        "stop",
        help="Unload a model from a running `llmcli serve`, freeing its memory.",
        epilog=STOP_EPILOG,
    )(stop)


def ps(
    host: client.HostOpt = "127.0.0.1",
    port: client.PortOpt = client.DEFAULT_PORT,
    url: client.UrlOpt = None,
    api_key: client.ApiKeyOpt = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the server's answer as JSON.")
    ] = False,
) -> None:
    answer = client.call(client.base_url(host, port, url), "/api/ps", api_key=api_key)
    if json_out:
        console.emit_json(answer)
        return
    rows = [["NAME", "SIZE", "SLOTS", "WAITING", "IDLE", "UNTIL"]]
    rows += [_row(m, time.time()) for m in answer.get("models", [])]
    if len(rows) == 1:
        console.notice("no model is loaded")
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        console.emit_text("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _row(model: dict[str, Any], now: float) -> list[str]:
    busy = model["active"] > 0 or model["waiting"] > 0
    expires = model.get("expires_at")
    if model.get("unloading"):
        until = "unloading"
    elif busy:
        until = "busy"
    elif expires is None:
        until = "forever"
    else:
        until = f"{format_seconds(max(0.0, expires - now))} from now"
    return [
        model["name"],
        format_bytes(model["size"]),
        f"{model['active']}/{model['parallel']}",
        str(model["waiting"]),
        "-" if busy else format_seconds(model["idle_seconds"]),
        until,
    ]


def stop(
    model: Annotated[str, typer.Argument(help="The model to unload, as the server names it.")],
    host: client.HostOpt = "127.0.0.1",
    port: client.PortOpt = client.DEFAULT_PORT,
    url: client.UrlOpt = None,
    api_key: client.ApiKeyOpt = None,
) -> None:
    base = client.base_url(host, port, url)
    answer = client.call(base, "/api/stop", api_key=api_key, body={"model": model})
    name = answer.get("model", model)
    if not answer.get("was_loaded"):
        console.notice(f"{name} was not loaded")
    elif answer.get("unloaded"):
        console.notice(f"unloaded {name}")
    else:
        console.notice(f"{name} unloads as soon as the requests it is answering end")
