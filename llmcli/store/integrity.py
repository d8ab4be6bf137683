"""Is a cached file what the Hub says it is? SHA-256 checks, and markers that
remember them.

`hf_hub_download` checks only the size of a plain HTTP download. Every file handed to
the engine has had its SHA-256 checked: against the Hub's tree listing on pull, and
against the blob's own name when found in the cache (the Hub's ETag of an LFS file *is*
its SHA-256, and the cache names blobs by ETag).

A check is recorded in a small marker in llmcli's data folder, keyed by the blob's path
and tied to its device, inode, size and mtime: any rewrite or truncation invalidates it,
so a multi-GB model is hashed once, not on every run. Markers never make an unverified
file look verified; losing them only costs a rehash.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import json
import os
import re
import threading
from pathlib import Path

from llmcli import config
from llmcli.atomic import write_atomic
from llmcli.reporting import ProgressFactory

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_READ_SIZE = 4 << 20  # large reads: hashing runs at memory speed, not syscall speed
_NOTICE_ABOVE = 256 << 20  # say "verifying" only when it takes a noticeable moment


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(_READ_SIZE)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def _git_blob_sha1(path: Path) -> str:
    """Git's object id of a file: what the Hub uses as the ETag of a non-LFS file."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_READ_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


def _markers_dir() -> Path:
    return config.user_data_dir() / "verified"


def _marker_path(blob: Path) -> Path:
    return _markers_dir() / (hashlib.sha256(str(blob).encode()).hexdigest()[:32] + ".json")


def _identity(st: os.stat_result) -> dict[str, int]:
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _verified_sha256(blob: Path) -> str | None:
    """The SHA-256 recorded for this blob, if it was verified and has not changed since."""
    try:
        record = json.loads(_marker_path(blob).read_text())
        if record.get("identity") == _identity(os.stat(blob)):
            sha = record.get("sha256")
            return sha if isinstance(sha, str) else None
    except (OSError, ValueError):
        pass
    return None


def record_verified(blob: Path, sha256: str) -> None:
    """Best effort: without a marker the file is simply hashed again next time."""
    target = _marker_path(blob)
    # Atomic: concurrent processes verifying the same blob each write a whole marker,
    # and a reader never sees half of one.
    with contextlib.suppress(OSError):
        record = {"path": str(blob), "sha256": sha256, "identity": _identity(os.stat(blob))}
        write_atomic(target, json.dumps(record))


def blob_entry(link: Path) -> Path:
    """The repo-local blob a snapshot entry links to (`blobs/<etag>`).

    Resolved one level only: the blob may itself link into a shared store whose file
    names are not Hub checksums.
    """
    if not link.is_symlink():
        return link.absolute()
    return Path(os.path.normpath(link.parent / os.readlink(link)))


def check_file(
    link: Path, *, sha256: str | None, progress: ProgressFactory | None, label: str
) -> bool:
    """True when the cached file `link` has the expected content.

    `sha256` comes from the Hub listing on pull; when None (cache lookup), the blob's own
    name is the expectation: a 64-hex name is the Hub's SHA-256 of an LFS file, a 40-hex
    name is the git object id of a small file.
    """
    blob = blob_entry(link)
    recorded = _verified_sha256(blob)
    if recorded is not None and (sha256 is None or recorded == sha256):
        return True
    expected = sha256 or blob.name
    if progress is not None and link.stat().st_size > _NOTICE_ABOVE:
        progress.notice(f"verifying {label}...")
    if _SHA256.match(expected):
        actual = sha256_file(link)
        if actual != expected:
            return False
        record_verified(blob, actual)
        return True
    if _COMMIT.match(expected):
        return _git_blob_sha1(link) == expected
    return True  # not a Hub checksum (another tool's cache entry): nothing to check against


class TailHasher:
    """Hashes a download while it is being written, so that verification costs almost
    nothing after the last byte arrives.

    hf_hub_download gives no access to the bytes it receives; it writes them to
    `blobs/<etag>.<random>.incomplete` and renames that file into place. This follows
    the file from the moment the transfer starts, reading what has been appended.

    The result is only trusted when it provably covers the final file: `result()` gives
    the device and inode of the file it read (a rename keeps them), the byte count and
    the digest, and the caller compares them with the finished blob. A download that
    rewinds (`invalidate()`), truncates, or writes out of order simply fails that
    comparison or the checksum, and the caller falls back to hashing the file whole.
    """

    def __init__(self, blobs_dir: Path, etag: str) -> None:
        self._blobs_dir = blobs_dir
        self._etag = etag
        self._done = threading.Event()
        self._invalid = False
        self._digest = hashlib.sha256()
        self._read = 0
        self._identity: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Call once the transfer has started (the temporary file exists). The file is
        opened here, in the caller's thread, so that it is held before any rename."""
        if self._thread is not None:
            return
        path = self._find()
        try:
            f = io.FileIO(path, "rb") if path is not None else None
        except OSError:
            f = None
        if f is None:
            self._invalid = True
            return
        st = os.fstat(f.fileno())
        self._identity = (st.st_dev, st.st_ino)
        self._thread = threading.Thread(target=self._follow, args=(f,), daemon=True)
        self._thread.start()

    def invalidate(self) -> None:
        self._invalid = True

    def result(self) -> tuple[int, int, int, str] | None:
        """(st_dev, st_ino, bytes read, sha256), or None; call after the download."""
        if self._thread is None:
            return None
        self._done.set()
        self._thread.join()
        if self._invalid or self._identity is None:
            return None
        return (*self._identity, self._read, self._digest.hexdigest())

    def _find(self) -> Path | None:
        # Newest first: an interrupted earlier run may have left an older one behind.
        found = sorted(
            self._blobs_dir.glob(f"{glob.escape(self._etag)}.*.incomplete"),
            key=lambda p: p.stat().st_mtime_ns if p.exists() else 0,
            reverse=True,
        )
        return found[0] if found else None

    def _follow(self, f: io.FileIO) -> None:
        buffer = bytearray(_READ_SIZE)
        view = memoryview(buffer)
        try:
            with f:
                while not self._invalid:
                    # `done` is set only after the writer closed the file, so a read that
                    # comes up empty after seeing it has reached the true end.
                    finished = self._done.is_set()
                    n = f.readinto(buffer)
                    if n:
                        self._digest.update(view[:n])
                        self._read += n
                    elif finished:
                        return
                    elif os.fstat(f.fileno()).st_size < self._read:
                        self._invalid = True  # truncated under us
                    else:
                        self._done.wait(0.005)
        except OSError:
            self._invalid = True
