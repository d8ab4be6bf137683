"""A Hugging Face Hub look-alike on 127.0.0.1, enough for huggingface_hub's real
download code: repo info, recursive tree listings with LFS SHA-256s, HEAD/GET of
`/resolve/` with X-Repo-Commit, ETag, Content-Length and Range, and the Hub's error
headers (RepoNotFound, EntryNotFound, RevisionNotFound, GatedRepo).

Tests describe repos with `FakeRepo`; the server also records every request so a test
can assert that a cached model was used without touching the network.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

CHUNK = 1 << 20

# An address where nothing listens: requests fail at once, as with no network at all.
DEAD_ENDPOINT = "http://127.0.0.1:9"


def git_blob_oid(data: bytes | memoryview) -> str:
    digest = hashlib.sha1(f"blob {len(data)}\0".encode())
    digest.update(data)
    return digest.hexdigest()


@dataclass
class FakeFile:
    data: bytes | memoryview
    lfs: bool = True
    listed_sha256: str | None = None  # what the tree listing claims; None: the truth
    sha256: str = field(init=False)
    oid: str = field(init=False)

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.oid = git_blob_oid(self.data)

    @property
    def etag(self) -> str:
        # The Hub's ETag of an LFS file is its SHA-256; of a small file, its git oid.
        return self.sha256 if self.lfs else self.oid


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, FakeFile]
    commit: str = ""
    gated_token: str | None = None  # when set, requests need `Authorization: Bearer <it>`
    branches: tuple[str, ...] = ("main",)
    # Serving knobs, for interruption tests.
    delay_per_chunk: float = 0.0  # seconds to sleep after each CHUNK sent
    chunk_size: int = CHUNK
    drop_after: int | None = None  # close the connection after this many body bytes...
    drops_left: int = 0  # ...this many times

    def __post_init__(self) -> None:
        if not self.commit:
            self.commit = hashlib.sha1(self.repo_id.encode()).hexdigest()


class HubServer:
    def __init__(self, repos: list[FakeRepo]) -> None:
        self.repos = {r.repo_id: r for r in repos}
        self.requests: list[tuple[str, str]] = []
        # Body bytes sent for each request of a file, (path, bytes), in order.
        self.sent: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        # Dropped connections are the point of some tests: no tracebacks for them.
        self._httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def add(self, repo: FakeRepo) -> None:
        self.repos[repo.repo_id] = repo


@contextmanager
def serve(repos: list[FakeRepo]) -> Iterator[HubServer]:
    server = HubServer(repos).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def refusing_endpoint() -> Iterator[str]:
    """An address on 127.0.0.1 that refuses every connection: a port held by a socket
    that never listens, so no other program can start listening there meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """An address on 127.0.0.1 that accepts connections and never answers: the kernel
    completes the handshake for a listening socket nobody reads from."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def _make_handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

        # -- routing ------------------------------------------------------------------

        def do_GET(self) -> None:
            self._route(head=False)

        def do_HEAD(self) -> None:
            self._route(head=True)

        def _route(self, *, head: bool) -> None:
            hub.record(self.command, self.path)
            parts = [unquote(p) for p in urlsplit(self.path).path.split("/")[1:]]
            if len(parts) >= 3 and parts[0] == "api" and parts[1] == "models":
                self._api(parts[2:])
            elif len(parts) >= 5 and parts[2] == "resolve":
                self._resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), head)
            else:
                self._error(404, "RepoNotFound", "not found")

        def _repo(self, repo_id: str) -> FakeRepo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return None
            expected = f"Bearer {repo.gated_token}"
            if repo.gated_token is not None and self.headers.get("Authorization") != expected:
                self._error(401, "GatedRepo", "Access to this model is restricted")
                return None
            return repo

        def _revision_ok(self, repo: FakeRepo, revision: str) -> bool:
            if revision in repo.branches or revision == repo.commit:
                return True
            self._error(404, "RevisionNotFound", "Invalid rev id")
            return False

        # -- API ----------------------------------------------------------------------

        def _api(self, rest: list[str]) -> None:
            if len(rest) < 2:
                self._error(404, "RepoNotFound", "Repository not found")
                return
            repo = self._repo(f"{rest[0]}/{rest[1]}")
            if repo is None:
                return
            tail = rest[2:]
            if not tail or tail[0] == "revision":
                if tail and not self._revision_ok(repo, tail[1]):
                    return
                self._json(
                    {
                        "id": repo.repo_id,
                        "sha": repo.commit,
                        "siblings": [{"rfilename": p} for p in repo.files],
                    }
                )
            elif tail[0] == "tree" and len(tail) >= 2:
                if self._revision_ok(repo, tail[1]):
                    self._json(_tree(repo, "/".join(tail[2:])))
            else:
                self._error(404, "RepoNotFound", "not found")

        # -- files --------------------------------------------------------------------

        def _resolve(self, repo_id: str, revision: str, path: str, head: bool) -> None:
            repo = self._repo(repo_id)
            if repo is None or not self._revision_ok(repo, revision):
                return
            fake = repo.files.get(path)
            if fake is None:
                self._error(404, "EntryNotFound", "Entry not found", commit=repo.commit)
                return
            size = len(fake.data)
            start, end = 0, size - 1
            range_header = self.headers.get("Range")
            if range_header and range_header.startswith("bytes="):
                first, _, last = range_header[len("bytes=") :].partition("-")
                start = int(first or 0)
                end = min(int(last), size - 1) if last else end
            partial = start > 0 or end < size - 1
            self.send_response(206 if partial else 200)
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("ETag", f'"{fake.etag}"')
            if fake.lfs:
                self.send_header("X-Linked-Etag", f'"{fake.etag}"')
                self.send_header("X-Linked-Size", str(size))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(end + 1 - start))
            if partial:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if head:
                return
            self._send_body(repo, memoryview(fake.data)[start : end + 1])

        def _send_body(self, repo: FakeRepo, body: memoryview) -> None:
            drop_at: int | None = None
            with hub._lock:
                if repo.drop_after is not None and repo.drops_left > 0:
                    repo.drops_left -= 1
                    drop_at = repo.drop_after
            sent = 0
            try:
                while sent < len(body):
                    end = min(len(body), sent + repo.chunk_size)
                    if drop_at is not None and end >= drop_at:
                        self.wfile.write(body[sent:drop_at])
                        self.wfile.flush()
                        sent = drop_at
                        self.close_connection = True
                        # shutdown, not close: close waits for the file objects that
                        # still reference the socket, so the client would not notice.
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.wfile.write(body[sent:end])
                    sent = end
                    if repo.delay_per_chunk:
                        time.sleep(repo.delay_per_chunk)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            finally:
                with hub._lock:
                    hub.sent.append((self.path, sent))

        # -- helpers ------------------------------------------------------------------

        def _json(self, payload: object) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
            body = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler


def _tree(repo: FakeRepo, under: str) -> list[dict[str, object]]:
    """The recursive listing, folders included, as the Hub returns it."""
    prefix = f"{under.rstrip('/')}/" if under else ""
    entries: list[dict[str, object]] = []
    folders: set[str] = set()
    for path, fake in sorted(repo.files.items()):
        if not path.startswith(prefix):
            continue
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folders.add("/".join(parts[:depth]))
        entry: dict[str, object] = {
            "type": "file",
            "oid": fake.oid,
            "size": len(fake.data),
            "path": path,
        }
        if fake.lfs:
            entry["lfs"] = {
                "oid": fake.listed_sha256 or fake.sha256,
                "size": len(fake.data),
                "pointerSize": 134,
            }
        entries.append(entry)
    for folder in sorted(folders):
        if folder.startswith(prefix):
            entries.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": folder})
    return entries


def tiny(seed: str, size: int = 4096) -> bytes:
    """Small distinct GGUF-looking bytes: enough to download and verify, not to load."""
    block = hashlib.sha256(seed.encode()).digest()
    return (b"GGUF" + block * (size // len(block) + 1))[:size]


GATED_TOKEN = "hf_test_token_0123456789"


def standard_repos(model: bytes) -> list[FakeRepo]:
    """The repos the tests and the benchmark use; `model` is the real test GGUF."""
    third = len(model) // 3
    view = memoryview(model)
    parts = [view[:third], view[third : 2 * third], view[2 * third :]]
    return [
        FakeRepo(
            "test/tiny-GGUF",
            {
                "README.md": FakeFile(b"# tiny\n", lfs=False),
                "tiny-Q4_K_M.gguf": FakeFile(tiny("q4km")),
                "tiny-Q4_K_S.gguf": FakeFile(tiny("q4ks", 3000)),
                "tiny-Q8_0.gguf": FakeFile(tiny("q80", 8192)),
                "tiny-F16.gguf": FakeFile(tiny("f16", 16384)),
                "mmproj-tiny-F16.gguf": FakeFile(tiny("mmproj")),
                "sub/tiny-Q5_K_M.gguf": FakeFile(tiny("q5km", 5000)),
            },
        ),
        FakeRepo(
            "test/noq4-GGUF",
            {"noq4-Q8_0.gguf": FakeFile(tiny("n-q80")), "noq4-Q6_K.gguf": FakeFile(tiny("n-q6k"))},
        ),
        FakeRepo(
            "test/SmolLM2-GGUF",
            {
                "README.md": FakeFile(b"# SmolLM2 135M Instruct\n", lfs=False),
                "SmolLM2-135M-Instruct-Q4_K_M.gguf": FakeFile(model),
            },
        ),
        FakeRepo(
            "test/split-GGUF",
            {
                f"SmolLM2-Q4_K_M/SmolLM2-Q4_K_M-{i:05d}-of-00003.gguf": FakeFile(part)
                for i, part in enumerate(parts, start=1)
            },
        ),
        FakeRepo(
            "test/badsha-GGUF",
            {"bad-Q4_K_M.gguf": FakeFile(tiny("bad"), listed_sha256="0" * 64)},
        ),
        FakeRepo(
            "test/gated-GGUF",
            {"gated-Q4_K_M.gguf": FakeFile(tiny("gated"))},
            gated_token=GATED_TOKEN,
        ),
        FakeRepo("test/evil-GGUF", {"../evil-Q4_K_M.gguf": FakeFile(tiny("evil"))}),
        # 16 MB at ~5 MB/s: slow enough to interrupt mid-download.
        FakeRepo(
            "test/slow-GGUF",
            {"slow-Q4_K_M.gguf": FakeFile(tiny("slow", 16 << 20))},
            chunk_size=256 << 10,
            delay_per_chunk=0.05,
        ),
        # The first GET of each file is cut after 1 MB.
        FakeRepo(
            "test/drop-GGUF",
            {"drop-Q4_K_M.gguf": FakeFile(tiny("drop", 4 << 20))},
            drop_after=1 << 20,
            drops_left=1,
        ),
    ]
