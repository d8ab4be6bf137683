"""Download progress on stderr: a live Rich bar (bytes, speed, ETA) for a person at a
terminal, one plain line per file for logs and pipes.

Implements `llmcli.reporting.ProgressFactory`, so core code never sees Rich.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING

from llmcli import terminal
from llmcli.humanize import format_bytes
from llmcli.ui import console

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from llmcli.reporting import FileProgress


class _LiveFile:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, nbytes: int) -> None:
        self._progress.advance(self._task, nbytes)

    def close(self) -> None:
        self._progress.stop_task(self._task)


class _PlainFile:
    """Nothing to redraw in a log: the line was written when the transfer started."""

    def advance(self, nbytes: int) -> None:
        pass

    def close(self) -> None:
        pass


class DownloadProgress:
    """Use as a context manager around a pull; the live display stops on exit.

    `live=None` decides from the terminal: bars only when stderr is one.
    """

    def __init__(self, *, live: bool | None = None, stderr: Console | None = None) -> None:
        self._live = terminal.current().stderr_live if live is None else live
        self._console = stderr
        self._progress: Progress | None = None
        self._started = time.monotonic()

    def __enter__(self) -> DownloadProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def notice(self, message: str) -> None:
        if self._progress is not None:
            # Printed through the live display so it lands above the bars, not inside.
            self._progress.console.print(message, markup=False, highlight=False)
        else:
            console.notice(message)

    def start_file(self, name: str, total: int | None, initial: int = 0) -> FileProgress:
        if not self._live:
            size = f" ({format_bytes(total)})" if total else ""
            console.notice(f"downloading {name}{size}")
            return _PlainFile()
        progress = self._ensure_progress()
        task = progress.add_task(name, total=total, completed=initial)
        return _LiveFile(progress, task)

    def _ensure_progress(self) -> Progress:
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}", markup=True),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self._console or console.stderr_console(),
                transient=False,
            )
            self._progress.start()
        return self._progress


def download_progress(*, live: bool | None = None) -> DownloadProgress:
    """The progress reporter to hand to `resolver.ensure_model` and `store.pull`."""
    return DownloadProgress(live=live)
