"""`pull`: download a model's files, verify each against the Hub's SHA-256, and keep
nothing unverified (partial files of earlier, interrupted pulls are cleaned up first)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from llmcli.errors import ModelInvalidError, ModelNotFoundError, NetworkError
from llmcli.model_refs import HubRef, is_safe_repo_path
from llmcli.projector_files import is_projector_name
from llmcli.quants import Candidate, SelectionError, is_model_file, select
from llmcli.reporting import FileProgress, ProgressFactory
from llmcli.store import integrity
from llmcli.store.cached import LocalModel
from llmcli.store.hub_client import hub_errors, install_http_client, quiet_library_log
from llmcli.store.leftovers import leftovers, remove_leftovers
from llmcli.store.settings import HubSettings, repo_cache_dir

if TYPE_CHECKING:
    from huggingface_hub import CachedFileInfo, HFCacheInfo


@dataclass(frozen=True)
class _RemoteFile:
    path: str
    size: int
    sha256: str | None  # LFS files; small files have only a git object id


def _list_remote(
    settings: HubSettings, repo_id: str, revision: str | None
) -> dict[str, _RemoteFile]:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=settings.endpoint, token=settings.token)
    listing: dict[str, _RemoteFile] = {}
    for entry in api.list_repo_tree(repo_id, recursive=True, revision=revision):
        if isinstance(entry, RepoFile):
            sha = entry.lfs.sha256 if entry.lfs is not None else None
            listing[entry.path] = _RemoteFile(entry.path, entry.size, sha)
    return listing


def _choose(ref: HubRef, listing: dict[str, _RemoteFile]) -> Candidate:
    unsafe = [p for p in listing if is_model_file(p) and not is_safe_repo_path(p)]
    if unsafe:
        raise ModelInvalidError(f"{ref.repo_id} lists an unsafe file name: {unsafe[0]!r}")
    try:
        return select(listing, quant=ref.quant, filename=ref.filename)
    except SelectionError as e:
        raise _selection_error(ref, e) from e


def _projector(listing: dict[str, _RemoteFile], model: str) -> list[str]:
    """The projector (mmproj) in the model file's folder, pulled with it so that the
    model can read images: f16 where there are several (the usual choice), else the
    smallest. None: an empty list."""
    folder = PurePosixPath(model).parent
    found = [
        f
        for f in listing.values()
        if PurePosixPath(f.path).parent == folder
        and is_projector_name(PurePosixPath(f.path).name)
        and is_safe_repo_path(f.path)
    ]
    if not found:
        return []
    best = min(found, key=lambda f: ("f16" not in f.path.lower(), f.size, f.path))
    return [best.path]


def _selection_error(ref: HubRef, error: SelectionError) -> ModelNotFoundError:
    if not error.available:
        return ModelNotFoundError(f"{ref.repo_id} has no GGUF model files")
    shown = ", ".join(error.available[:12]) + (" ..." if len(error.available) > 12 else "")
    kind = "files" if ref.filename else "quantizations"
    return ModelNotFoundError(f"{ref.display}: {error}", hint=f"available {kind}: {shown}")


def _progress_class(
    progress: ProgressFactory | None, label: str, hasher: integrity.TailHasher | None
) -> type[Any]:
    """A tqdm class for hf_hub_download, the only hook it offers into a transfer: it
    forwards byte counts to `progress` and starts `hasher` when the transfer starts.

    The tqdm base stays disabled so that it never draws its own bar.
    """
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    class _Forwarding(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            total, initial = kwargs.get("total"), kwargs.get("initial") or 0
            kwargs.pop("name", None)  # huggingface_hub's own option; tqdm rejects it
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            if hasher is not None:
                hasher.start()
                if initial:
                    hasher.invalidate()  # a resumed file: its start was never followed
            self._sink: FileProgress | None = (
                progress.start_file(label, total, initial) if progress is not None else None
            )

        def update(self, n: float | None = 1) -> bool | None:
            if n is not None and n < 0 and hasher is not None:
                hasher.invalidate()  # the download restarted from scratch in the same file
            if self._sink is not None and n:
                self._sink.advance(int(n))
            return None

        def close(self) -> None:
            sink: FileProgress | None = getattr(self, "_sink", None)
            if sink is not None:
                self._sink = None
                sink.close()
            super().close()

    return _Forwarding


def _verified_in_flight(path: Path, hasher: integrity.TailHasher | None, sha256: str) -> bool:
    """True when the hash taken during the download provably covers the finished file:
    same device and inode (the rename keeps them), same length, expected digest."""
    result = hasher.result() if hasher is not None else None
    if result is None:
        return False
    st = os.stat(path)
    if result != (st.st_dev, st.st_ino, st.st_size, sha256):
        return False
    integrity.record_verified(integrity.blob_entry(path), sha256)
    return True


def _delete_files(settings: HubSettings, paths: list[Path]) -> None:
    """Remove cached files (link and blob) that must not be used, through the cache API
    so that blobs other files still share are kept."""
    from huggingface_hub import scan_cache_dir

    targets = {p.absolute() for p in paths}
    try:
        info = scan_cache_dir(settings.cache_dir)
    except Exception:
        info = None
    doomed = [f for f in _all_files(info) if f.file_path.absolute() in targets] if info else []
    if info is not None and doomed:
        info.delete_files(*doomed).execute()
    for path in paths:  # anything the scan did not see (a half-written cache entry)
        with contextlib.suppress(OSError):
            blob = path.resolve()
            path.unlink()
            if blob != path.absolute():
                blob.unlink()


def _all_files(info: HFCacheInfo) -> Iterator[CachedFileInfo]:
    for repo in info.repos:
        for revision in repo.revisions:
            yield from revision.files


def _cached_copy(
    settings: HubSettings, repo_id: str, rel: str, revision: str | None
) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, rel, cache_dir=settings.cache_dir, revision=revision)
    return Path(found) if isinstance(found, str) else None


def pull(
    ref: HubRef, *, revision: str | None = None, progress: ProgressFactory | None = None
) -> LocalModel:
    """Download what `ref` means (files already cached and intact are kept), verify
    each file against the Hub's listing, and return the model.

    On a checksum mismatch the model's files are deleted from the cache and
    ModelInvalidError is raised: nothing unverified is left for a later run to use.
    """
    settings = HubSettings.from_env()  # first: it checks what the library reads at import

    from huggingface_hub import hf_hub_download

    if settings.offline:
        raise NetworkError(
            f"cannot pull {ref.display}: offline mode is on", hint="unset HF_HUB_OFFLINE"
        )
    quiet_library_log()
    install_http_client(settings)
    remove_leftovers(leftovers([ref.repo_id]))
    with hub_errors(ref.display, settings):
        listing = _list_remote(settings, ref.repo_id, revision)
        chosen = _choose(ref, listing)
        if progress is not None:
            # Only now: when the Hub cannot be reached, its one error line says it all.
            progress.notice(f"pulling {ref.display}...")
        local: list[Path] = []
        for rel in [*chosen.paths, *_projector(listing, chosen.paths[0])]:
            # hf_hub_download returns a cached file as is: one damaged since (or put
            # there unverified by another tool) must go first so that it is replaced.
            stale = _cached_copy(settings, ref.repo_id, rel, revision)
            if stale is not None and not integrity.check_file(
                stale, sha256=None, progress=progress, label=rel
            ):
                _delete_files(settings, [stale])
            expected = listing[rel].sha256
            # The Hub names an LFS blob by its SHA-256, so the file being written is
            # `blobs/<sha256>.*.incomplete`: hash it while it arrives.
            blobs = repo_cache_dir(settings, ref.repo_id) / "blobs"
            hasher = integrity.TailHasher(blobs, expected) if expected else None
            try:
                path = Path(
                    hf_hub_download(
                        ref.repo_id,
                        rel,
                        revision=revision,
                        cache_dir=settings.cache_dir,
                        endpoint=settings.endpoint,
                        token=settings.token,
                        etag_timeout=settings.answer_timeout,
                        tqdm_class=_progress_class(progress, rel, hasher),
                    )
                )
            except BaseException:
                if hasher is not None:
                    hasher.result()  # stop following the file
                raise
            if expected is not None and _verified_in_flight(path, hasher, expected):
                local.append(path)
                continue
            if not integrity.check_file(path, sha256=expected, progress=progress, label=rel):
                _delete_files(settings, [*local, path])
                raise ModelInvalidError(
                    f"{ref.repo_id}/{rel} does not match the SHA-256 the Hub lists for it;"
                    " nothing was kept",
                    hint="try again later; if it persists the repo itself is broken",
                )
            local.append(path)
    commit = local[0].relative_to(repo_cache_dir(settings, ref.repo_id) / "snapshots").parts[0]
    # The projector lies beside the model (found there by projector_files); not a part.
    return LocalModel(ref.repo_id, commit, tuple(local[: len(chosen.paths)]), chosen.quant)
