"""Turning the -m value into a model file on disk, for every command that loads one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmcli.resolve.resolver import BeforeDownload


def model_file(ref: str | None, *, before_download: BeforeDownload | None = None) -> Path:
    """The local GGUF for a reference, pulling it first (with progress on stderr) when it
    is not cached; `before_download` may refuse the download."""
    from llmcli.resolve.resolver import ensure_model
    from llmcli.ui.progress import download_progress

    with download_progress() as progress:
        return ensure_model(ref, progress=progress, before_download=before_download)
