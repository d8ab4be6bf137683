"""Running the app under uvicorn, and stopping it without leaving anyone hanging.

Ctrl-C or SIGTERM: no new requests are taken; answers in flight get `grace` seconds to
finish, then are cut (their streams still end properly, with finish_reason "length");
then the process exits. A second signal exits at once.
"""

from __future__ import annotations

import threading
from types import FrameType

import uvicorn

from llmcli.serve.app import build_app
from llmcli.serve.deadlines import protocol_class
from llmcli.serve.state import ServerState


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState, grace: float) -> None:
        super().__init__(config)
        self.state = state
        self.grace = grace
        self._timer: threading.Timer | None = None
        self.stopped_by: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._timer is None:
            self.state.scheduler.stop_accepting()
            self._timer = threading.Timer(self.grace, self.state.scheduler.interrupt_all)
            self._timer.daemon = True
            self._timer.start()
        super().handle_exit(sig, frame)
        # uvicorn would raise the signal again once stopped, killing the process before
        # it has closed the model; the command exits with its own code instead.
        self.stopped_by = self.stopped_by or sig
        self._captured_signals.clear()


def serve(state: ServerState, *, host: str, port: int, grace: float) -> int | None:
    """Serve until a signal stops it; the signal, or None when the server could not run
    (e.g. the port is taken)."""
    config = uvicorn.Config(
        build_app(state),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        # Streams that were cut after the grace period still need a moment to end.
        timeout_graceful_shutdown=int(grace) + 5,
        server_header=False,
        # h11 with deadlines for a request's head and body (uvicorn has neither).
        http=protocol_class(state.log),
    )
    server = _Server(config, state, grace)
    try:
        server.run()
    finally:
        if server._timer is not None:
            server._timer.cancel()
        state.scheduler.close()
    return server.stopped_by
