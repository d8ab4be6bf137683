"""What core code reports while it works (notices, download progress), as protocols.

Core modules (`store`, `resolve`) call these; `llmcli.ui.progress` implements them with
Rich on stderr. Keeping only the protocol here lets core code stay free of any terminal
or presentation library, and lets tests pass a recorder.
"""

from __future__ import annotations

from typing import Protocol


class FileProgress(Protocol):
    """Progress of one file transfer, in bytes."""

    def advance(self, nbytes: int) -> None:
        """`nbytes` more arrived (negative when a retry discards bytes)."""

    def close(self) -> None:
        """The transfer ended, successfully or not."""


class ProgressFactory(Protocol):
    def notice(self, message: str) -> None:
        """A one-line status message, e.g. "pulling qwen2.5:1.5b...". Goes to stderr."""

    def start_file(self, name: str, total: int | None, initial: int = 0) -> FileProgress:
        """A transfer of `total` bytes (None if unknown) starts, `initial` already done."""
