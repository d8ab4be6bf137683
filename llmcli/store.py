"""Models on the Hugging Face Hub and in the local cache: find, pull, list, remove.

The only module that imports `huggingface_hub`, and only inside functions so that
`llmcli --help` and shell completion do not pay for it.

Files live in the standard Hugging Face cache (`HF_HUB_CACHE`, else `HF_HOME/hub`), so
models other tools downloaded are found and ours are theirs.

Every file handed to the engine has had its SHA-256 checked (`llmcli.integrity`); a
file that fails is never used.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcli import aliases, config, integrity
from llmcli.errors import (
    DiskError,
    LlmcliError,
    ModelInvalidError,
    ModelNotFoundError,
    NetworkError,
    UsageError,
)
from llmcli.quants import Candidate, SelectionError, candidates, is_model_file, select
from llmcli.refs import HubRef, is_safe_repo_path, parse_ref
from llmcli.reporting import FileProgress, ProgressFactory

if TYPE_CHECKING:
    from huggingface_hub import CachedFileInfo, HFCacheInfo

_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's spelling of "true" in env vars
_COMMIT = re.compile(r"^[0-9a-f]{40}$")

# How long to wait for the Hub where huggingface_hub sets no limit (its listing requests
# wait forever on a server that accepts a connection and never answers). A healthy Hub
# connects and answers an API call well within these.
CONNECT_TIMEOUT_S = 2.0
ANSWER_TIMEOUT_S = 2.5  # HF_HUB_ETAG_TIMEOUT, huggingface_hub's own knob, overrides it
_CONNECT_RETRY_DELAY_S = 0.2
_SILENT_MEMORY_S = 30.0  # a host that timed out fails at once for this long
# An interrupted download is cleaned up only when untouched this long and unlocked: on
# file systems where locks silently do nothing, a download in progress still writes
# at least every few seconds.
_LEFTOVER_AGE_S = 60.0


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class HubSettings:
    """The Hub environment, read at call time.

    huggingface_hub reads its environment variables once, at import; reading them here
    on every call and passing them explicitly means a change (a test, an embedding
    program) is honoured even after the library was imported.
    """

    endpoint: str | None
    cache_dir: Path
    offline: bool
    token: str | bool | None
    answer_timeout: float = ANSWER_TIMEOUT_S

    @classmethod
    def from_env(cls) -> HubSettings:
        env = os.environ
        cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
        if not cache:
            home = env.get("HF_HOME") or os.path.join(
                env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface"
            )
            cache = os.path.join(home, "hub")
        token: str | bool | None = env.get("HF_TOKEN") or None
        if token is None and env.get("HF_HUB_DISABLE_IMPLICIT_TOKEN", "").upper() in _TRUE:
            token = False  # send no token at all, not even the one saved by `hf auth login`
        try:
            answer_timeout = float(env.get("HF_HUB_ETAG_TIMEOUT") or ANSWER_TIMEOUT_S)
        except ValueError:
            answer_timeout = ANSWER_TIMEOUT_S
        return cls(
            endpoint=env.get("HF_ENDPOINT", "").rstrip("/") or None,
            cache_dir=Path(cache).expanduser(),
            offline=env.get("HF_HUB_OFFLINE", "").upper() in _TRUE,
            token=token,
            answer_timeout=answer_timeout if answer_timeout > 0 else ANSWER_TIMEOUT_S,
        )

    @property
    def where(self) -> str:
        return self.endpoint or "https://huggingface.co"


def _repo_dir(settings: HubSettings, repo_id: str) -> Path:
    return settings.cache_dir / ("models--" + repo_id.replace("/", "--"))


# --------------------------------------------------------------------------- HTTP


class _HubUnreachable(Exception):
    """The Hub could not be reached at all: refused, unresolvable or silent.

    Deliberately not an httpx error: huggingface_hub retries those five times with
    growing pauses (23 s and a log line per try) before it gives up, which without a
    network only delays the same answer.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_installed_limits: tuple[float, float] | None = None


def _quiet_library_log() -> None:
    """llmcli reports every failure in its own words, once: huggingface_hub's retry and
    resume warnings would only repeat it. HF_HUB_VERBOSITY or LLMCLI_DEBUG bring them
    back."""
    if not (config.debug_enabled() or os.environ.get("HF_HUB_VERBOSITY")):
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)


def _install_http_client(settings: HubSettings) -> None:
    """Give huggingface_hub a shared HTTP client that bounds every wait and turns an
    unreachable Hub into `_HubUnreachable` after at most one short retry."""
    global _installed_limits
    limits = (CONNECT_TIMEOUT_S, settings.answer_timeout)
    if _installed_limits == limits:
        return
    import httpx2
    from huggingface_hub import get_session, set_client_factory

    # The library's own request hooks (offline mode, request ids) must keep running.
    hooks = {name: list(fns) for name, fns in get_session().event_hooks.items()}
    connect_s, answer_s = limits
    # Hosts that just timed out, with why and until when. Each process starts with a
    # best-effort request of the library's own (a registry fetch): when
    # that found the Hub silent, the listing right after it need not wait again.
    silent: dict[str, tuple[str, float]] = {}

    class QuickFailClient(httpx2.Client):
        def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
            host = request.url.netloc.decode()
            known = silent.get(host)
            if known is not None and time.monotonic() < known[1]:
                raise _HubUnreachable(known[0])
            # huggingface_hub passes `timeout=None` (no limit) for its API calls: those
            # wait `answer_s` at most, and so does its start-up registry fetch (3 s of
            # its own). A limit it sets for a file download is kept.
            timeout = dict(request.extensions.get("timeout") or {})
            timeout["connect"] = timeout.get("connect") or connect_s
            given = timeout.get("read")
            if "/resolve/" in request.url.path:
                timeout["read"] = given or answer_s
            else:
                timeout["read"] = min(given, answer_s) if given else answer_s
            request.extensions["timeout"] = timeout
            try:
                try:
                    return super().send(request, **kwargs)
                except httpx2.ConnectError:
                    time.sleep(_CONNECT_RETRY_DELAY_S)  # a blip passes; an outage does not
                    return super().send(request, **kwargs)
            except httpx2.ConnectError as e:
                raise _HubUnreachable(_connect_failure(e)) from e
            except httpx2.TimeoutException as e:
                if isinstance(e, httpx2.ConnectTimeout):
                    reason = f"no connection within {timeout['connect']:g} s"
                else:
                    reason = f"no answer within {timeout['read']:g} s"
                silent[host] = (reason, time.monotonic() + _SILENT_MEMORY_S)
                raise _HubUnreachable(reason) from e

    set_client_factory(
        lambda: QuickFailClient(event_hooks=hooks, follow_redirects=True, timeout=None)
    )
    _installed_limits = limits


def _connect_failure(error: BaseException) -> str:
    """Why a connection failed, in a few words, from the OS error underneath."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return str(error) or "no connection"


def _unreachable(settings: HubSettings, reason: str | None) -> NetworkError:
    """The one message for a Hub that cannot be reached, with what to do instead."""
    where = settings.where + (f": {reason}" if reason else "")
    if cached_model_names():
        instead = "cached models (llmcli list) work with HF_HUB_OFFLINE=1"
    else:
        from llmcli.starter import starter_path

        instead = "nothing is cached yet: run a local file with -m ./model.gguf"
        if starter_path() is not None:
            instead += ", or the small starter model with -m starter"
    return NetworkError(
        f"cannot reach the Hub at {where}",
        hint=f"check the network or HF_ENDPOINT; {instead}",
    )


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class LocalModel:
    """A model in the cache, ready to load: `path` is the file to hand to the engine
    (the first part of a split model; llama.cpp finds the others beside it)."""

    repo_id: str
    commit: str
    files: tuple[Path, ...]
    quant: str | None

    @property
    def path(self) -> Path:
        return self.files[0]

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files)


@dataclass(frozen=True)
class CachedModel:
    """One row of `llmcli list`."""

    name: str  # what to type to use it: an alias, owner/repo:QUANT or owner/repo/file
    repo_id: str
    commit: str
    refs: tuple[str, ...]
    files: tuple[str, ...]  # repo-relative
    quant: str | None
    size: int
    modified: float  # seconds since the epoch
    path: Path


@dataclass(frozen=True)
class Leftover:
    """The partial file of a download that was killed before it could clean up."""

    repo_id: str
    path: Path
    size: int


@dataclass(frozen=True)
class RemovalPlan:
    """What `remove` would delete; `execute()` does it."""

    models: tuple[CachedModel, ...]
    freed_bytes: int
    _strategies: tuple[Any, ...]  # huggingface_hub DeleteCacheStrategy objects
    leftovers: tuple[Leftover, ...] = ()

    def execute(self) -> int:
        _remove_leftovers(self.leftovers)
        for strategy in self._strategies:
            strategy.execute()
        return self.freed_bytes


# --------------------------------------------------------------------------- errors


@contextlib.contextmanager
def _hub_errors(what: str, settings: HubSettings) -> Iterator[None]:
    """Translate huggingface_hub and network exceptions into llmcli's, one line each.

    Order matters: GatedRepoError is a RepositoryNotFoundError, and every HTTP error is
    also an OSError.
    """
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo = what.split(":")[0]
    try:
        yield
    except LlmcliError:
        raise
    except GatedRepoError as e:
        raise NetworkError(
            f"{repo} is gated: access needs approval on the Hub",
            hint="request access on its Hub page, then set HF_TOKEN to a token of that account",
        ) from e
    except RepositoryNotFoundError as e:
        raise ModelNotFoundError(
            f"model repo not found on the Hub: {repo}",
            hint="check the name; a private repo needs HF_TOKEN",
        ) from e
    except RevisionNotFoundError as e:
        raise ModelNotFoundError(f"revision not found in {repo}") from e
    except RemoteEntryNotFoundError as e:
        raise ModelNotFoundError(f"file not found on the Hub: {what}") from e
    except (OfflineModeIsEnabled, LocalEntryNotFoundError) as e:
        raise NetworkError(
            f"{what} is not in the cache and the Hub cannot be reached",
            hint="connect to the network, or unset HF_HUB_OFFLINE",
        ) from e
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise NetworkError(f"the Hub answered HTTP {status} for {what}") from e
    except _HubUnreachable as e:
        raise _unreachable(settings, e.reason) from e
    except (httpx2.TransportError, ConnectionError, TimeoutError) as e:
        raise _unreachable(settings, None) from e
    except OSError as e:
        raise _os_error(e, settings) from e


def _os_error(error: OSError, settings: HubSettings) -> LlmcliError:
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return DiskError(f"disk full while writing to {settings.cache_dir}")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return DiskError(
            f"cannot write to the model cache {settings.cache_dir}",
            hint="set HF_HUB_CACHE to a writable folder",
        )
    if "Consistency check failed" in str(error):  # huggingface_hub's size check
        return NetworkError("the download was cut short", hint="run the command again")
    return LlmcliError(f"{error.strerror or error}")


# --------------------------------------------------------------------------- cache lookup


def _snapshot_files(snapshot: Path) -> list[str]:
    """Repo-relative paths of the complete files in a snapshot folder.

    A file is listed only when its symlink resolves: an interrupted download leaves a
    `.incomplete` blob and no link, so it can never be mistaken for a model.
    """
    found: list[str] = []
    for root, _dirs, files in os.walk(snapshot):
        for name in files:
            full = Path(root, name)
            if full.exists():
                found.append(full.relative_to(snapshot).as_posix())
    return found


def _cached_commits(repo_dir: Path, revision: str | None) -> list[str]:
    if revision is not None and _COMMIT.match(revision):
        return [revision]
    ref = repo_dir / "refs" / (revision or "main")
    try:
        return [ref.read_text().strip()]
    except OSError:
        pass
    if revision is not None:
        return []
    # No `main` ref (a model fetched by commit hash): any snapshot will do, newest first.
    snapshots = repo_dir / "snapshots"
    try:
        dirs = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return []
    return [d.name for d in dirs]


def find_cached(
    ref: HubRef, *, revision: str | None = None, progress: ProgressFactory | None = None
) -> LocalModel | None:
    """The cached model `ref` means, verified, without any network access; None if the
    cache does not hold it completely."""
    settings = HubSettings.from_env()
    repo_dir = _repo_dir(settings, ref.repo_id)
    for commit in _cached_commits(repo_dir, revision):
        snapshot = repo_dir / "snapshots" / commit
        try:
            chosen = select(_snapshot_files(snapshot), quant=ref.quant, filename=ref.filename)
        except SelectionError:
            continue
        files = tuple(snapshot / p for p in chosen.paths)
        for path, rel in zip(files, chosen.paths, strict=True):
            if not integrity.check_file(path, sha256=None, progress=progress, label=rel):
                raise ModelInvalidError(
                    f"cached file fails its checksum: {ref.repo_id}/{rel}",
                    hint=f"run `llmcli pull {ref.display}` to download it again",
                )
        return LocalModel(ref.repo_id, commit, files, chosen.quant)
    return None


# --------------------------------------------------------------------------- leftovers


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


def _remove_leftovers(found: Iterable[Leftover]) -> None:
    """Delete these partial files, checking again (under the lock) that they are stale."""
    settings = HubSettings.from_env()
    for leftover in found:
        repo_dir = leftover.path.parent.parent
        with _unless_downloading(settings, repo_dir, leftover.path) as stale:
            if stale:
                with contextlib.suppress(OSError):
                    leftover.path.unlink()


# --------------------------------------------------------------------------- pull


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
    from huggingface_hub import hf_hub_download

    settings = HubSettings.from_env()
    if settings.offline:
        raise NetworkError(
            f"cannot pull {ref.display}: offline mode is on", hint="unset HF_HUB_OFFLINE"
        )
    _quiet_library_log()
    _install_http_client(settings)
    _remove_leftovers(leftovers([ref.repo_id]))
    with _hub_errors(ref.display, settings):
        listing = _list_remote(settings, ref.repo_id, revision)
        chosen = _choose(ref, listing)
        if progress is not None:
            # Only now: when the Hub cannot be reached, its one error line says it all.
            progress.notice(f"pulling {ref.display}...")
        local: list[Path] = []
        for rel in chosen.paths:
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
            blobs = _repo_dir(settings, ref.repo_id) / "blobs"
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
    commit = local[0].relative_to(_repo_dir(settings, ref.repo_id) / "snapshots").parts[0]
    return LocalModel(ref.repo_id, commit, tuple(local), chosen.quant)


# --------------------------------------------------------------------------- list / rm


def _scan(settings: HubSettings) -> HFCacheInfo | None:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        return scan_cache_dir(settings.cache_dir)
    except CacheNotFound:
        return None
    except OSError as e:
        raise _os_error(e, settings) from e


def _models_in(info: HFCacheInfo) -> Iterator[tuple[CachedModel, list[CachedFileInfo], Any]]:
    """Every GGUF model in the cache, with its cache entries and its revision."""
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            by_rel = {f.file_path.relative_to(rev.snapshot_path).as_posix(): f for f in rev.files}
            found = candidates(by_rel)
            for cand, name in zip(found, model_names(repo.repo_id, found), strict=True):
                entries = [by_rel[p] for p in cand.paths]
                model = CachedModel(
                    name=name,
                    repo_id=repo.repo_id,
                    commit=rev.commit_hash,
                    refs=tuple(sorted(rev.refs)),
                    files=cand.paths,
                    quant=cand.quant,
                    size=sum(e.size_on_disk for e in entries),
                    modified=max(e.blob_last_modified for e in entries),
                    path=entries[0].file_path,
                )
                yield model, entries, rev


def model_names(repo_id: str, found: list[Candidate]) -> list[str]:
    """What to type to use each model of one cached revision: its alias, else
    owner/repo:QUANT when the quant is unique in the revision, else owner/repo/file."""
    quants = [c.quant for c in found]
    names: list[str] = []
    for cand in found:
        unique = cand.quant is not None and quants.count(cand.quant) == 1
        alias = aliases.alias_for(repo_id, cand.quant) if unique else None
        if alias is not None:
            names.append(alias)
        elif unique:
            names.append(f"{repo_id}:{cand.quant}")
        else:
            names.append(f"{repo_id}/{cand.primary}")
    return names


def cached_model_names() -> list[str]:
    """The names `list_models` would give, read straight from the cache's folder layout
    (`models--owner--repo/snapshots/<commit>/...`) without huggingface_hub: shell
    completion calls this on every Tab and must answer at once."""
    cache = HubSettings.from_env().cache_dir
    names: set[str] = set()
    try:
        repos = [d for d in cache.iterdir() if d.name.startswith("models--")]
    except OSError:
        return []
    for repo_dir in repos:
        repo_id = repo_dir.name[len("models--") :].replace("--", "/")
        try:
            snapshots = list((repo_dir / "snapshots").iterdir())
        except OSError:
            continue
        for snapshot in snapshots:
            found = candidates(_snapshot_files(snapshot))
            names.update(model_names(repo_id, found))
    return sorted(names, key=str.lower)


def list_models() -> list[CachedModel]:
    """Cached GGUF models, including those other tools downloaded, by name."""
    info = _scan(HubSettings.from_env())
    if info is None:
        return []
    return sorted((m for m, _e, _r in _models_in(info)), key=lambda m: (m.name.lower(), m.commit))


def _matches(ref: HubRef, model: CachedModel) -> bool:
    if model.repo_id.lower() != ref.repo_id.lower():
        return False
    if ref.filename is not None:
        return any(f.lower() == ref.filename.lower() for f in model.files)
    if ref.quant is not None:
        return model.quant == ref.quant
    return True  # a bare owner/repo means every model of that repo


def plan_removal(texts: list[str]) -> RemovalPlan:
    """What removing these references would delete, without deleting anything.

    A bare `owner/repo` removes every cached revision of that repo; an alias, `:QUANT`
    or file removes just that model's files (and the revision, once no model is left
    in it).
    """
    settings = HubSettings.from_env()
    refs: list[HubRef] = []
    for text in texts:
        parsed = parse_ref(text, user_aliases=config.load().aliases)
        if not isinstance(parsed, HubRef):
            raise UsageError(f"{text} is a local file, not a cached model; delete it yourself")
        refs.append(parsed)
    info = _scan(settings)
    entries = list(_models_in(info)) if info is not None else []
    chosen: dict[tuple[str, str, tuple[str, ...]], tuple[CachedModel, list[Any], Any]] = {}
    # Interrupted downloads in the repos named go too: nothing else can reclaim them.
    partials = leftovers({r.repo_id for r in refs})
    for ref, text in zip(refs, texts, strict=True):
        hits = [e for e in entries if _matches(ref, e[0])]
        if not hits and not any(p.repo_id.lower() == ref.repo_id.lower() for p in partials):
            raise ModelNotFoundError(f"not in the cache: {text}", hint="see `llmcli list`")
        for hit in hits:
            chosen[(hit[0].repo_id, hit[0].commit, hit[0].files)] = hit
    if info is None:
        return RemovalPlan((), sum(p.size for p in partials), (), tuple(partials))
    whole: list[str] = []
    partial: list[CachedFileInfo] = []
    for commit in {key[1] for key in chosen}:
        hits = [v for k, v in chosen.items() if k[1] == commit]
        revision = hits[0][2]
        doomed = {f.file_path for _m, files, _r in hits for f in files}
        others = [f for f in revision.files if f.file_path not in doomed]
        rest_has_models = any(is_model_file(f.file_path.name) for f in others)
        if rest_has_models:
            partial.extend(f for _m, files, _r in hits for f in files)
        else:
            whole.append(commit)
    strategies: list[Any] = []
    if whole:
        strategies.append(info.delete_revisions(*whole))
    if partial:
        strategies.append(info.delete_files(*partial))
    freed = sum(int(s.expected_freed_size) for s in strategies) + sum(p.size for p in partials)
    models = tuple(sorted((v[0] for v in chosen.values()), key=lambda m: m.name))
    return RemovalPlan(models, freed, tuple(strategies), tuple(partials))
