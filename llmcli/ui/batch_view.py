"""Progress of a batch on stderr: a bar for a person at a terminal, nothing otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from llmcli import terminal
from llmcli.ui.console import stderr_console

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class BatchProgress:
    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress = progress
        self._task = task
        self.failed = 0

    def advance(self, *, failed: bool) -> None:
        self.failed += failed
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=1, failed=self.failed)


@contextmanager
def batch_progress(total: int) -> Iterator[BatchProgress]:
    if not terminal.current().stderr_live:
        yield BatchProgress(None, None)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeRemainingColumn(),
        console=stderr_console(),
        transient=True,
    ) as progress:
        yield BatchProgress(progress, progress.add_task("batch", total=total, failed=0))
