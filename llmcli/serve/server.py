"""Running the app under uvicorn, and stopping it without leaving anyone hanging.

Ctrl-C or SIGTERM: no new requests are taken; answers in flight get `grace` seconds to
finish, then are cut (their streams still end properly, with finish_reason "length");
then the process exits. A second signal ends the answers in flight at once, the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import FrameType

import uvicorn

from llmcli.serve import log
from llmcli.serve.app import build_app
from llmcli.serve.deadlines import protocol_class
from llmcli.serve.state import ServerState

# After a second signal, how long streams get to send their last chunk.
FORCE_AFTER_S = 2.0


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState, grace: float) -> None:
        super().__init__(config)
        self.state = state
        self.grace = grace
        self._timer: threading.Timer | None = None
        self._forcing: threading.Timer | None = None
        self.stopped_by: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._timer is None:
            self.state.residency.stop_accepting()
            self._timer = _later(self.grace, self.state.residency.interrupt_all)
            self.stopped_by = sig
            self.should_exit = True
        elif self._forcing is None:
            # The second signal ends every answer now, each stream with its final chunk;
            # uvicorn would instead drop the connections mid-stream (a second Ctrl-C) or
            # wait out the grace period (a second SIGTERM). A client that does not read
            # what is left is cut soon after.
            self._timer.cancel()
            self.state.residency.interrupt_all()
            self._forcing = _later(FORCE_AFTER_S, self._force)
        # Not uvicorn's own handler: it raises the signal again once stopped, killing the
        # process before it has closed the model; the command exits with its own code.

    def _force(self) -> None:
        self.force_exit = True


def _later(seconds: float, action: Callable[[], None]) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()
    return timer


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
        http=protocol_class(),
    )
    server = _Server(config, state, grace)
    try:
        with log.to_stderr():
            server.run()
    finally:
        for timer in (server._timer, server._forcing):
            if timer is not None:
                timer.cancel()
        state.residency.close()
    return server.stopped_by
