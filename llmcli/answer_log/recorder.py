"""Writing entries on a thread of their own: an answer is handed over when it is done,
and the caller goes on (the next chat turn, the next batch line) while it is written."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from llmcli.answer_log.entry import Entry

if TYPE_CHECKING:
    import sqlite3

# How long `close` waits: the database's busy timeout (database.BUSY_TIMEOUT), and more.
_WAIT_S = 4.0


class Recorder:
    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._queue: queue.Queue[Entry | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        # Why the latest write failed (for one line on stderr), None while all went well.
        self.failure: str | None = None

    def record(self, entry: Entry) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="answer-log", daemon=True)
            self._thread.start()
        self._queue.put(entry)

    def close(self, timeout: float = _WAIT_S) -> str | None:
        """Wait (at most `timeout` seconds) for what was handed over to be written; why
        something was not, or None."""
        if self._thread is None:
            return self.failure
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            return "the log database did not answer in time"
        return self.failure

    def _run(self) -> None:
        # Imported here, on this thread: sqlite3 and the schema cost an answer nothing.
        from llmcli.answer_log.database import connect, write
        from llmcli.answer_log.problems import FAILURES, reason

        conn: sqlite3.Connection | None = None
        try:
            while (entry := self._queue.get()) is not None:
                try:
                    if conn is None:
                        conn = connect(self._path)
                    write(conn, entry)
                except FAILURES as exc:
                    self.failure = reason(exc)
        finally:
            if conn is not None:
                conn.close()
