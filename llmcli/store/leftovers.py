"""Partial files of interrupted downloads: found only when no pull is writing them, and
removed under huggingface_hub's lock for the blob."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from llmcli.store.settings import HubSettings

# An interrupted download is cleaned up only when untouched this long and unlocked: on
# file systems where locks silently do nothing, a download in progress still writes
# at least every few seconds.
_LEFTOVER_AGE_S = 60.0


@dataclass(frozen=True)
class Leftover:
    """The partial file of a download that was killed before it could clean up."""

    repo_id: str
    path: Path
    size: int


def _repo_dirs(settings: HubSettings, repo_ids: Iterable[str] | None) -> Iterator[tuple[str, Path]]:
    """(repo id, folder) of the cached model repos, or of those named (any case)."""
    wanted = None if repo_ids is None else {r.lower() for r in repo_ids}
    try:
        folders = sorted(settings.cache_dir.glob("models--*"))
    except OSError:
        return
    for folder in folders:
        repo_id = folder.name[len("models--") :].replace("--", "/")
        if wanted is None or repo_id.lower() in wanted:
            yield repo_id, folder


@contextlib.contextmanager
def _unless_downloading(settings: HubSettings, repo_dir: Path, partial: Path) -> Iterator[bool]:
    """Yield True, holding huggingface_hub's lock for that blob, when nobody is writing
    `partial` (named `<etag>[.<random>].incomplete`); else yield False at once."""
    from huggingface_hub.utils import WeakFileLock  # type: ignore[attr-defined]

    try:
        idle = time.time() - partial.stat().st_mtime >= _LEFTOVER_AGE_S
    except OSError:
        idle = False
    etag = partial.name.split(".")[0]
    lock = settings.cache_dir / ".locks" / repo_dir.name / f"{etag}.lock"
    with contextlib.ExitStack() as stack:
        # A download takes the lock before it creates its file: no lock file, no writer.
        if idle and lock.exists():
            try:
                stack.enter_context(WeakFileLock(lock, timeout=0.01))
            except TimeoutError:  # filelock's Timeout: a pull holds it right now
                idle = False
        yield idle


def leftovers(repo_ids: Iterable[str] | None = None) -> list[Leftover]:
    """Partial files of interrupted downloads that no running pull is writing: space a
    pull or `rm` of their repo reclaims."""
    settings = HubSettings.from_env()
    found: list[Leftover] = []
    for repo_id, repo_dir in _repo_dirs(settings, repo_ids):
        for partial in sorted((repo_dir / "blobs").glob("*.incomplete")):
            with _unless_downloading(settings, repo_dir, partial) as stale:
                if stale:
                    with contextlib.suppress(OSError):
                        found.append(Leftover(repo_id, partial, partial.stat().st_size))
    return found


def remove_leftovers(found: Iterable[Leftover]) -> None:
    """Delete these partial files, checking again (under the lock) that they are stale."""
    settings = HubSettings.from_env()
    for leftover in found:
        repo_dir = leftover.path.parent.parent
        with _unless_downloading(settings, repo_dir, leftover.path) as stale:
            if stale:
                with contextlib.suppress(OSError):
                    leftover.path.unlink()
