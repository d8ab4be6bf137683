"""`llmcli worker`: lend this machine's CPU or GPU to llmcli on other machines (RPC)."""

from __future__ import annotations

import signal
import threading
import time
from typing import Annotated

import typer

from llmcli.commands._listen import endpoint, is_loopback
from llmcli.errors import LlmcliError
from llmcli.ui import console

DEFAULT_PORT = 50052

EPILOG = """\
Examples:

  llmcli worker                                   # 127.0.0.1:50052, this machine only

  llmcli worker --host 0.0.0.0 --port 50052       # reachable from the (trusted) network

  llmcli run --rpc 192.168.1.20:50052,192.168.1.21:50052 "Why is the sky blue?"

The RPC protocol has no authentication and no encryption: anyone who can reach the port
can use the worker's memory and compute. Listen on another address than 127.0.0.1 only on
a network you trust. The worker offers all of its device's free memory (this llama.cpp's
RPC server has no cap); `--tensor-split` on the client decides each device's share.
"""


def register(app: typer.Typer) -> None:
    app.command(
        "worker",
        help="Serve this machine's GPU (or CPU) to `llmcli --rpc` on other machines, so "
        "that a model too big for one machine is split across several.\n\n"
        "Needs a llama.cpp build with RPC, on the worker and the client alike. Runs until "
        "Ctrl-C or SIGTERM.",
        epilog=EPILOG,
    )(worker)


def worker(
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on. Only 127.0.0.1 keeps the worker private."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="TCP port to listen on.")
    ] = DEFAULT_PORT,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="CPU threads for the layers this worker computes on the CPU. Default: the "
            "usable cores other processes are not keeping busy.",
            show_default=False,
        ),
    ] = None,
) -> None:
    from llmcli.engine.rpc_server import start_worker
    from llmcli.tuning.threads import choose_threads

    if not is_loopback(host):
        console.notice(
            f"warning: listening on {host}: the RPC protocol has no authentication, so "
            "anyone who can reach this port can use this machine; use it only on a "
            "trusted network"
        )
    n_threads = threads or choose_threads().threads
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        devices, server = start_worker(host, port, n_threads, _ConnectionLog().line)
        shown = ", ".join(f"{d.name} ({d.description}, {d.free_mib} MiB free)" for d in devices)
        address = endpoint(host, port)
        console.notice(
            f"worker listening on {address}, serving {shown} with {n_threads} "
            f"thread{'s' if n_threads != 1 else ''}; "
            f"use it with `llmcli run --rpc {address}`; Ctrl-C to stop"
        )
        try:
            while not stop.wait(0.2):
                if not server.is_alive():
                    raise LlmcliError(f"the RPC server on {address} stopped on its own")
        except KeyboardInterrupt:
            pass
        console.notice("worker stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)


class _ConnectionLog:
    """llama.cpp's RPC server prints a line per connection, and a client opens several
    while it loads a model: they are reported as one visit, which ends when no connection
    has been open for a second."""

    def __init__(self, quiet_s: float = 1.0) -> None:
        self.quiet_s = quiet_s
        self._lock = threading.Lock()
        self._visiting = False
        self._leaving: threading.Timer | None = None

    def line(self, line: str) -> None:
        if line.startswith("Accepted client connection"):
            with self._lock:
                if self._leaving is not None:
                    self._leaving.cancel()
                    self._leaving = None
                if not self._visiting:
                    self._visiting = True
                    _log("a client connected")
        elif line.startswith("Client connection closed"):
            with self._lock:
                if self._leaving is not None:
                    self._leaving.cancel()
                self._leaving = threading.Timer(self.quiet_s, self._left)
                self._leaving.daemon = True
                self._leaving.start()
        elif line.startswith(("Failed", "Invalid")):
            _log(line)
        # The start banner repeats what the worker already said.

    def _left(self) -> None:
        with self._lock:
            self._visiting = False
            self._leaving = None
        _log("the client disconnected")


def _log(text: str) -> None:
    console.info(f"{time.strftime('%H:%M:%S')} {text}")
