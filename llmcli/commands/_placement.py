"""--rpc and --tensor-split: which devices hold the model's layers, and in what shares."""

from __future__ import annotations

from typing import Any

import typer


def _endpoints(value: str) -> tuple[str, ...]:
    endpoints = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        host, colon, port = part.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise typer.BadParameter(
                f"{part!r} is not HOST:PORT (e.g. 192.168.1.20:50052)", param_hint="--rpc"
            )
        endpoints.append(part)
    if not endpoints:
        raise typer.BadParameter("no worker given (HOST:PORT[,HOST:PORT...])", param_hint="--rpc")
    return tuple(dict.fromkeys(endpoints))


def _shares(value: str) -> tuple[float, ...]:
    try:
        shares = tuple(float(p) for p in value.split(",") if p.strip())
    except ValueError:
        shares = ()
    if not shares or any(s < 0 or s != s for s in shares) or not any(shares):
        raise typer.BadParameter(
            f"{value!r} is not a list of non-negative shares (e.g. 3,1)",
            param_hint="--tensor-split",
        )
    return shares


def placement(rpc: str | None, tensor_split: str | None) -> dict[str, Any]:
    """LoadOptions fields for --rpc (else $LLMCLI_RPC, else the config file's `rpc`) and
    --tensor-split."""
    if rpc is None:
        from llmcli import config

        rpc = config.load().rpc
    return {
        "rpc": _endpoints(rpc) if rpc else (),
        "tensor_split": _shares(tensor_split) if tensor_split else None,
    }
