"""Copies of the test model with another chat template: a rewrite of the GGUF header.

Only the `tokenizer.chat_template` value changes (it is added when missing). Tensor
offsets are relative to the data section, so the data is copied as it is after padding
the new header to the file's alignment. With `weights=False` the data section is left
as a hole of the right size (a sparse file): enough for vocabulary-only loads, which
check the file's size but read no weights.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

KEY = "tokenizer.chat_template"
_STRING, _ARRAY = 8, 9
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return int(value)

    def string(self) -> bytes:
        n = self.take("Q")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def skip_value(self, kind: int) -> None:
        if kind == _STRING:
            self.string()
        elif kind == _ARRAY:
            item, count = self.take("I"), self.take("Q")
            for _ in range(count):
                self.skip_value(item)
        else:
            self.pos += _SIZES[kind]


def _encode_string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def with_chat_template(src: Path, dst: Path, template: str, *, weights: bool = True) -> Path:
    return with_metadata(src, dst, strings={KEY: template}, weights=weights)


def with_metadata(
    src: Path,
    dst: Path,
    *,
    strings: dict[str, str] | None = None,
    bools: dict[str, bool] | None = None,
    weights: bool = True,
) -> Path:
    """A copy of `src` with these keys set (replaced, or added at the end)."""
    new: dict[str, bytes] = {}
    for key, text in (strings or {}).items():
        new[key] = struct.pack("<I", _STRING) + _encode_string(text.encode("utf-8"))
    for key, flag in (bools or {}).items():
        new[key] = struct.pack("<IB", 7, int(flag))
    with src.open("rb") as f:
        head = f.read(64 << 20)  # the header of a small model fits easily
    r = _Reader(head)
    assert head[:4] == b"GGUF"
    r.pos = 4
    version, n_tensors, n_kv = r.take("I"), r.take("Q"), r.take("Q")
    assert version in (2, 3)
    alignment = 32
    kvs = b""
    for _ in range(n_kv):
        at = r.pos
        key = r.string().decode()
        kind = r.take("I")
        if key == "general.alignment":
            alignment = struct.unpack_from("<I", head, r.pos)[0]
        r.skip_value(kind)
        if key not in new:
            kvs += head[at : r.pos]
    kv_end = r.pos
    for key, value in new.items():
        kvs += _encode_string(key.encode()) + value
    for _ in range(n_tensors):
        r.string()
        dims = r.take("I")
        r.pos += 8 * dims + 4 + 8
    info_end = r.pos
    data_start = (info_end + alignment - 1) // alignment * alignment

    count = _count(kvs)
    header = head[:4] + struct.pack("<IQQ", version, n_tensors, count) + kvs
    header += head[kv_end:info_end]
    header += b"\0" * (-len(header) % alignment)
    data_size = src.stat().st_size - data_start
    with src.open("rb") as f, dst.open("wb") as out:
        out.write(header)
        if weights:
            f.seek(data_start)
            shutil.copyfileobj(f, out, 1 << 20)
        else:
            out.truncate(len(header) + data_size)
    return dst


def _count(kvs: bytes) -> int:
    r = _Reader(kvs)
    n = 0
    while r.pos < len(kvs):
        r.string()
        r.skip_value(r.take("I"))
        n += 1
    return n
