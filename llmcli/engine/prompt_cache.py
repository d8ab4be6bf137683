"""KV state of long prompt prefixes, kept on disk across runs.

A script that calls llmcli again and again with the same long preamble pays for it once:
the KV state after the prompt is saved, and a later prompt that starts with the same
tokens loads it instead of evaluating them again. Short prompts keep the state of their
chat template's preamble (system prompt included) the same way, looked up by its exact
tokens (`restore_exact`).

Entries live in one folder per model identity (file contents, engine version, attention
kernel), so a state is never loaded into a model it does not belong to. Each entry is
written to a temporary file and renamed, so readers never see half of one; a corrupt,
truncated or foreign entry fails its checks, is deleted, and the prompt is evaluated as
if there were no cache. The folder is bounded in size; least recently used entries go
(`llmcli.prompt_cache_files` lists, evicts and clears them).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path

import llama_cpp
import numpy as np

from llmcli.atomic import write_atomic
from llmcli.engine.llama_state import KvState, common_prefix
from llmcli.prompt_cache_files import SUFFIX, evict, max_bytes_from_env, remove

MAGIC = b"LLMCLIKV"
VERSION = 1
_HEADER = struct.Struct("<8sIIQI")  # magic, version, n_tokens, state bytes, crc32
DEFAULT_MIN_TOKENS = 512


def model_identity(path: Path, *, flash_attn: bool, setup: str = "") -> str:
    """A key for 'this model file, in this engine build, with this KV layout'; `setup`
    names what else changes a state (cache types, an adapter, RoPE scaling)."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        digest.update(f.read(1 << 20))
    digest.update(f"{size}|{llama_cpp.__version__}|fa={flash_attn}|v{VERSION}".encode())
    if setup:
        digest.update(f"|{setup}".encode())
    return digest.hexdigest()[:32]


class PromptCache:
    """Saved KV states under `folder`, for the model whose context `kv` is and whose
    `identity` (see `model_identity`) names its entries' subfolder."""

    def __init__(
        self,
        folder: Path,
        kv: KvState,
        *,
        identity: str,
        n_ctx: int,
        min_tokens: int = DEFAULT_MIN_TOKENS,
        max_bytes: int | None = None,
    ) -> None:
        self.root = folder
        self.folder = folder / identity
        self.kv = kv
        self.n_ctx = n_ctx
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
        in_memory = self.kv.reusable(prompt)
        best: tuple[int, Path, list[int]] | None = None
        for path in self._entries():
            tokens = self._read_tokens(path)
            if tokens is None:
                remove(path)
                continue
            if len(tokens) > self.n_ctx:
                continue  # saved by a run with a larger --ctx: fine, just not for this one
            shared = self._usable(common_prefix(tokens, prompt), len(prompt))
            if (
                shared >= self.min_tokens
                and shared > in_memory
                and (best is None or shared > best[0])
            ):
                best = (shared, path, tokens)
        if best is None:
            return 0
        shared, path, tokens = best
        if not self._load(path, tokens, shared):
            return 0
        with contextlib.suppress(OSError):
            os.utime(path)  # most recently used: evicted last
        return shared

    def restore_exact(self, tokens: Sequence[int]) -> bool:
        """Load the entry saved for exactly `tokens` (a preamble), if there is one."""
        path = self.folder / _entry_name(_ids(tokens))
        saved = self._read_tokens(path)
        if saved is None:
            if path.exists():
                remove(path)
            return False
        if saved != list(tokens) or not self._load(path, saved, len(saved)):
            return False
        with contextlib.suppress(OSError):
            os.utime(path)
        return True

    def _usable(self, shared: int, prompt_len: int) -> int:
        """How much of a shared prefix to reuse: whole batches only.

        llama.cpp rounds a batch of a few tokens differently from a full one, so a prompt
        evaluated from a restored state gives the same answer as a fresh evaluation only
        when every position is computed in the same batch as before: batches start at
        position 0 and hold n_batch tokens, so the reused part ends on a batch boundary.
        """
        step = self.kv.n_batch
        return (min(shared, prompt_len - 1) // step) * step

    def _load(self, path: Path, tokens: list[int], keep: int) -> bool:
        try:
            data = path.read_bytes()
        except OSError:
            return False
        _, _, n_tokens, state_len, crc = _HEADER.unpack_from(data)
        body = memoryview(data)[_HEADER.size :]
        if len(body) != 4 * n_tokens + state_len or zlib.crc32(body) != crc:
            remove(path)
            return False
        if not self.kv.restore(body[4 * n_tokens :], tokens, keep):
            remove(path)
            return False
        return True

    # -- writing -----------------------------------------------------------------------

    def worth_saving(self, prompt: Sequence[int], reused: int) -> bool:
        """Long prompts whose new part is long too (saving what is already stored again
        would only cost disk)."""
        return len(prompt) >= self.min_tokens and len(prompt) - reused >= self.min_tokens

    def save(self, tokens: Sequence[int]) -> None:
        """Save the KV state of `tokens`, which must be exactly what the context holds.
        The copy is taken now; the file is written in the background."""
        state = self.kv.save()
        if state is None:
            return
        ids = _ids(tokens)
        self.wait()
        self._writer = threading.Thread(
            target=self._write, args=(ids, state, len(tokens)), daemon=False
        )
        self._writer.start()

    def _write(self, ids: bytes, state: bytes, n_tokens: int) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = _entry_name(ids)
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


def _ids(tokens: Sequence[int]) -> bytes:
    return np.asarray(tokens, dtype="<i4").tobytes()


def _entry_name(ids: bytes) -> str:
    """An entry's file name: named by its tokens, so an exact match needs no search."""
    return hashlib.sha256(ids).hexdigest()[:32] + SUFFIX


def preamble_applies(prompt_tokens: int, preamble: int) -> bool:
    """Whether a prompt is evaluated as its preamble, then the rest. Only short prompts:
    a long one's state is kept in whole batches from its start (see `_usable`), which
    another split would shift."""
    return 0 < preamble < prompt_tokens < DEFAULT_MIN_TOKENS
