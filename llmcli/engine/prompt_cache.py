"""KV state of long prompt prefixes, kept on disk across runs.

A script that calls llmcli again and again with the same long preamble pays for it once:
the KV state after the prompt is saved, and a later prompt that starts with the same
tokens loads it instead of evaluating them again.

Entries live in one folder per model identity (file contents, engine version, attention
kernel), so a state is never loaded into a model it does not belong to. Each entry is
written to a temporary file and renamed, so readers never see half of one; a corrupt,
truncated or foreign entry fails its checks, is deleted, and the prompt is evaluated as
if there were no cache. The folder is bounded in size; least recently used entries go.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import struct
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import llama_cpp
import numpy as np

from llmcli.atomic import write_atomic
from llmcli.config import user_cache_dir

if TYPE_CHECKING:
    from llmcli.engine.model import Model

MAGIC = b"LLMCLIKV"
VERSION = 1
_HEADER = struct.Struct("<8sIIQI")  # magic, version, n_tokens, state bytes, crc32
SUFFIX = ".kv"
DEFAULT_MIN_TOKENS = 512
DEFAULT_MAX_BYTES = 2 << 30


def prompt_cache_dir() -> Path:
    return user_cache_dir() / "prompts"


def max_bytes_from_env() -> int:
    """LLMCLI_PROMPT_CACHE_MB caps the cache folder (default 2048 MB)."""
    value = os.environ.get("LLMCLI_PROMPT_CACHE_MB", "").strip()
    try:
        return int(float(value) * (1 << 20)) if value else DEFAULT_MAX_BYTES
    except ValueError:
        return DEFAULT_MAX_BYTES


def model_identity(model: Model) -> str:
    """A key for 'this model file, in this engine build, with this KV layout'."""
    path = model.options.path
    digest = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        digest.update(f.read(1 << 20))
    digest.update(
        f"{size}|{llama_cpp.__version__}|fa={model.options.flash_attn}|v{VERSION}".encode()
    )
    return digest.hexdigest()[:32]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    x = np.asarray(a[:n], dtype=np.int64)
    y = np.asarray(b[:n], dtype=np.int64)
    diff = np.flatnonzero(x != y)
    return int(diff[0]) if diff.size else n


class PromptCache:
    def __init__(
        self,
        folder: Path,
        model: Model,
        *,
        min_tokens: int = DEFAULT_MIN_TOKENS,
        max_bytes: int | None = None,
    ) -> None:
        self.root = folder
        self.folder = folder / model_identity(model)
        self.model = model
        self.min_tokens = min_tokens
        self.max_bytes = max_bytes_from_env() if max_bytes is None else max_bytes
        self._writer: threading.Thread | None = None

    # -- reading -----------------------------------------------------------------------

    def _entries(self) -> list[Path]:
        try:
            return [p for p in self.folder.iterdir() if p.suffix == SUFFIX]
        except OSError:
            return []

    @staticmethod
    def _read_tokens(path: Path) -> list[int] | None:
        try:
            with path.open("rb") as f:
                head = f.read(_HEADER.size)
                if len(head) < _HEADER.size:
                    return None
                magic, version, n_tokens, _, _ = _HEADER.unpack(head)
                if magic != MAGIC or version != VERSION:
                    return None
                raw = f.read(4 * n_tokens)
        except OSError:
            return None
        if len(raw) != 4 * n_tokens:
            return None
        return [int(t) for t in np.frombuffer(raw, dtype="<i4")]

    def restore(self, prompt: Sequence[int]) -> int:
        """Load the entry sharing the longest prefix with `prompt` into the model, when
        that beats what its KV cache already holds. Returns the tokens it brought."""
        llama = self.model.llama
        in_memory = self.model.cached_prefix(prompt)
        best: tuple[int, Path, list[int]] | None = None
        for path in self._entries():
            tokens = self._read_tokens(path)
            if tokens is None:
                _remove(path)
                continue
            if len(tokens) > self.model.n_ctx:
                continue  # saved by a run with a larger --ctx: fine, just not for this one
            shared = self._usable(_common_prefix(tokens, prompt), len(prompt))
            if (
                shared >= self.min_tokens
                and shared > in_memory
                and (best is None or shared > best[0])
            ):
                best = (shared, path, tokens)
        if best is None:
            return 0
        shared, path, tokens = best
        if not self._load(path, tokens):
            return 0
        llama.input_ids[: len(tokens)] = tokens
        llama._ctx.kv_cache_seq_rm(0, shared, -1)
        llama.n_tokens = shared
        with contextlib.suppress(OSError):
            os.utime(path)  # most recently used: evicted last
        return shared

    def _usable(self, shared: int, prompt_len: int) -> int:
        """How much of a shared prefix to reuse: whole batches only.

        llama.cpp rounds a batch of a few tokens differently from a full one, so a prompt
        evaluated from a restored state gives the same answer as a fresh evaluation only
        when every position is computed in the same batch as before: batches start at
        position 0 and hold n_batch tokens, so the reused part ends on a batch boundary.
        """
        step = self.model.llama.n_batch
        return (min(shared, prompt_len - 1) // step) * step

    def _load(self, path: Path, tokens: list[int]) -> bool:
        llama = self.model.llama
        try:
            data = path.read_bytes()
        except OSError:
            return False
        _, _, n_tokens, state_len, crc = _HEADER.unpack_from(data)
        body = memoryview(data)[_HEADER.size :]
        if len(body) != 4 * n_tokens + state_len or zlib.crc32(body) != crc:
            _remove(path)
            return False
        state = (ctypes.c_uint8 * state_len).from_buffer_copy(body[4 * n_tokens :])
        llama._ctx.kv_cache_seq_rm(0, 0, -1)
        llama.n_tokens = 0
        if llama_cpp.llama_state_seq_set_data(llama.ctx, state, state_len, 0) != state_len:
            llama._ctx.kv_cache_seq_rm(0, 0, -1)
            _remove(path)
            return False
        llama._requires_eval = True  # logits are not part of the saved state
        return True

    # -- writing -----------------------------------------------------------------------

    def worth_saving(self, prompt: Sequence[int], reused: int) -> bool:
        """Long prompts whose new part is long too (saving what is already stored again
        would only cost disk)."""
        return len(prompt) >= self.min_tokens and len(prompt) - reused >= self.min_tokens

    def save(self, tokens: Sequence[int]) -> None:
        """Save the KV state of `tokens`, which must be exactly what the context holds.
        The copy is taken now; the file is written in the background."""
        llama = self.model.llama
        size = llama_cpp.llama_state_seq_get_size(llama.ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(llama.ctx, buffer, size, 0)
        if written <= 0:
            return
        state = bytes(memoryview(buffer)[:written])
        ids = np.asarray(tokens, dtype="<i4").tobytes()
        self.wait()
        self._writer = threading.Thread(
            target=self._write, args=(ids, state, len(tokens)), daemon=False
        )
        self._writer.start()

    def _write(self, ids: bytes, state: bytes, n_tokens: int) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256(ids).hexdigest()[:32] + SUFFIX
            crc = zlib.crc32(state, zlib.crc32(ids))
            header = _HEADER.pack(MAGIC, VERSION, n_tokens, len(state), crc)
            write_atomic(self.folder / name, (header, ids, state))
            evict(self.root, self.max_bytes)
        except OSError:
            pass  # a cache that cannot be written is only a missed speed-up

    def wait(self) -> None:
        if self._writer is not None:
            self._writer.join()
            self._writer = None


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def entries(root: Path) -> list[Path]:
    try:
        return sorted(root.glob(f"*/*{SUFFIX}"))
    except OSError:
        return []


def evict(root: Path, max_bytes: int) -> int:
    """Delete least recently used entries until the folder fits; returns bytes freed."""
    stats = []
    for path in entries(root):
        with contextlib.suppress(OSError):
            st = path.stat()
            stats.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in stats)
    freed = 0
    for _, size, path in sorted(stats):
        if total <= max_bytes:
            break
        _remove(path)
        total -= size
        freed += size
    return freed


def clear(root: Path) -> tuple[int, int]:
    """Delete every entry (and stale temporary files); returns (files, bytes)."""
    count = size = 0
    for path in [*entries(root), *root.glob("*/*.tmp")]:
        with contextlib.suppress(OSError):
            size += path.stat().st_size
            path.unlink()
            count += 1
    return count, size
