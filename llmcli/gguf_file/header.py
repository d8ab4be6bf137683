"""A GGUF file's header, read without loading the model: the key/value and tensor-info
sections, where big arrays (tokenizer.ggml.tokens, merges, scores) are stepped over and
only counted. Tensor data is never read. Also the early check of a model file, before
llama.cpp loads it. Standard library only: no llama_cpp, gguf or numpy.

GGUF layout (v2, v3), little- or big-endian throughout:
  magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
  kv_count x  (string key | u32 value_type | value)
  tensor_count x (string name | u32 n_dims | u64 dims[n_dims] | u32 ggml_type | u64 offset)
  padding to general.alignment (default 32) | tensor data
  string = u64 length + UTF-8 bytes; array = u32 item_type + u64 count + items.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from llmcli.errors import HeaderTruncatedError, ModelInvalidError, ModelNotFoundError

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# Arrays up to this many items keep their values (per-layer head counts, tags);
# longer ones (vocabularies, merges) are only counted.
SMALL_ARRAY = 256

# GGUF value types -> struct codes; 8 = string and 9 = array are handled apart.
_STRING, _ARRAY = 8, 9
_SCALARS: dict[int, str] = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}


@dataclass(frozen=True)
class ArrayInfo:
    """An array value: its item type and length; the items only when the array is small."""

    item_type: int
    count: int
    values: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    # Where its data starts, from the start of the data section.
    offset: int = 0

    @property
    def n_elements(self) -> int:
        n = 1
        for dim in self.shape:
            n *= dim
        return n


@dataclass(frozen=True)
class Header:
    version: int
    metadata: dict[str, Any]  # scalars as Python values, arrays as ArrayInfo
    tensors: tuple[TensorInfo, ...]
    # Where the tensor data section starts in the file.
    data_start: int = 0


# -- opening a model file ----------------------------------------------------------------


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """`path` open for reading; failing to find or read it is a ModelNotFoundError."""
    try:
        with path.open("rb") as f:
            yield f
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ModelNotFoundError(f"model file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise ModelNotFoundError(f"model path is a directory, not a GGUF file: {path}") from exc
    except OSError as exc:
        raise ModelNotFoundError(f"cannot read model file {path}: {exc.strerror}") from exc


def _check_magic(head: bytes, path: Path) -> None:
    if head[:4] != MAGIC:
        raise ModelInvalidError(f"not a GGUF model file: {path}")


def check_gguf_file(path: Path) -> None:
    """Fail early, with a clear message, on what llama.cpp would only call 'failed'."""
    with _opened(path) as f:
        head = f.read(8)
    _check_magic(head, path)
    if len(head) < 8:
        raise ModelInvalidError(f"GGUF file is truncated: {path}")


# -- reading a header --------------------------------------------------------------------


class _Truncated(Exception):
    pass


class _Cursor:
    """Sequential reads from a memory map or bytes; any read past the end raises
    _Truncated."""

    def __init__(self, buf: mmap.mmap | bytes, order: str) -> None:
        self.buf = buf
        self.pos = 0
        self.size = len(buf)
        self.order = order
        self._u32 = struct.Struct(order + "I")
        self._u64 = struct.Struct(order + "Q")

    def take(self, n: int) -> int:
        """Advance by n bytes and return where they start."""
        start = self.pos
        if n < 0 or start + n > self.size:
            raise _Truncated
        self.pos = start + n
        return start

    def u32(self) -> int:
        return int(self._u32.unpack_from(self.buf, self.take(4))[0])

    def u64(self) -> int:
        return int(self._u64.unpack_from(self.buf, self.take(8))[0])

    def string(self) -> str:
        n = self.u64()
        start = self.take(n)
        return self.buf[start : start + n].decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        # The hot loop of the whole reader: ~100k strings for a typical vocabulary.
        unpack = self._u64.unpack_from
        buf, pos, size = self.buf, self.pos, self.size
        for _ in range(count):
            if pos + 8 > size:
                raise _Truncated
            pos += 8 + unpack(buf, pos)[0]
        if pos > size:
            raise _Truncated
        self.pos = pos

    def scalar(self, value_type: int) -> Any:
        code = _SCALARS[value_type]
        fmt = struct.Struct(self.order + code)
        return fmt.unpack_from(self.buf, self.take(fmt.size))[0]

    def value(self, value_type: int) -> Any:
        if value_type == _STRING:
            return self.string()
        if value_type == _ARRAY:
            return self.array()
        if value_type not in _SCALARS:
            raise ModelInvalidError(f"unknown GGUF value type {value_type}")
        return self.scalar(value_type)

    def array(self) -> ArrayInfo:
        item_type = self.u32()
        count = self.u64()
        if count > self.size:  # every item takes at least one byte
            raise _Truncated
        if count <= SMALL_ARRAY:
            return ArrayInfo(item_type, count, tuple(self.value(item_type) for _ in range(count)))
        if item_type == _STRING:
            self.skip_strings(count)
        elif item_type in _SCALARS:
            self.take(count * struct.calcsize(_SCALARS[item_type]))
        else:  # arrays of arrays: walk them
            for _ in range(count):
                self.value(item_type)
        return ArrayInfo(item_type, count)


def read_header(path: Path) -> Header:
    """Parse the key/value and tensor-info sections of a GGUF file.

    Raises ModelNotFoundError for a missing file, ModelInvalidError for anything that is
    not a complete GGUF header.
    """
    with _opened(path) as f:
        if os.fstat(f.fileno()).st_size < 4:
            raise ModelInvalidError(f"not a GGUF model file: {path}")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(buf, path)


def parse_header(data: bytes, name: str) -> Header:
    """Parse a header from the first bytes of a GGUF file (`name` is for messages).

    Raises HeaderTruncatedError when `data` ends before the header does, so a caller
    reading the file piece by piece knows to fetch more.
    """
    if len(data) < 4 and MAGIC.startswith(data):
        raise HeaderTruncatedError(f"GGUF header is truncated: {name}")
    return _parse(data, Path(name))


def _parse(buf: mmap.mmap | bytes, path: Path) -> Header:
    _check_magic(buf[:4], path)
    try:
        # Endianness is not flagged: a big-endian file has its version byte-swapped.
        order = "<"
        cur = _Cursor(buf, order)
        cur.take(4)
        version = cur.u32()
        if version & 0xFFFF == 0:
            order = ">"
            cur = _Cursor(buf, order)
            cur.take(4)
            version = cur.u32()
        if version not in (2, 3):
            raise ModelInvalidError(
                f"unsupported GGUF version {version} in {path} (llmcli reads versions 2 and 3)"
            )
        n_tensors = cur.u64()
        n_kv = cur.u64()
        if n_tensors > cur.size or n_kv > cur.size:
            raise _Truncated
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = cur.string()
            metadata[key] = cur.value(cur.u32())
        tensors = []
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.u32()
            if n_dims > 8:
                raise ModelInvalidError(f"corrupt tensor info in {path}")
            shape = tuple(cur.u64() for _ in range(n_dims))
            ggml_type = cur.u32()
            offset = cur.u64()
            tensors.append(TensorInfo(name, shape, ggml_type, offset))
    except (_Truncated, struct.error) as exc:
        raise HeaderTruncatedError(f"GGUF header is truncated: {path}") from exc
    alignment = int_value(metadata.get("general.alignment")) or DEFAULT_ALIGNMENT
    data_start = (cur.pos + alignment - 1) // alignment * alignment
    return Header(version, metadata, tuple(tensors), data_start)


def int_value(value: Any) -> int | None:
    """An integer key; per-layer arrays (some models vary heads by layer) give their max."""
    if isinstance(value, ArrayInfo):
        numbers = [v for v in value.values or () if isinstance(v, int)]
        return max(numbers) if numbers else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value
