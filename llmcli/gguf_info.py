"""The model card from a GGUF file's header, read without loading the model.

`gguf.GGUFReader` parses every key and array eagerly (2.4 s for a 49k-token vocabulary).
A card needs far less, so this module walks the header itself: the key/value section,
where big arrays (tokenizer.ggml.tokens, merges, scores) are stepped over and only
counted, then the tensor-info section for names, shapes and types. Tensor data is never
read. Cards are also cached per (path, size, mtime) in the user's cache directory.

The package `gguf` supplies only constants (type names, block sizes, file-type names);
its constants module is loaded on its own because `import gguf` pulls in numpy and the
whole writer (about 0.1 s, a third of the time budget of `llmcli show`).

GGUF layout (v2, v3), little- or big-endian throughout:
  magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
  kv_count x  (string key | u32 value_type | value)
  tensor_count x (string name | u32 n_dims | u64 dims[n_dims] | u32 ggml_type | u64 offset)
  padding to general.alignment (default 32) | tensor data
  string = u64 length + UTF-8 bytes; array = u32 item_type + u64 count + items.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import mmap
import os
import re
import struct
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from llmcli import config
from llmcli.atomic import write_atomic
from llmcli.errors import ModelInvalidError, ModelNotFoundError

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# Arrays up to this many items keep their values (per-layer head counts, tags);
# longer ones (vocabularies, merges) are only counted.
SMALL_ARRAY = 256
# Bumped whenever ModelCard changes shape, so stale cache entries are ignored.
CARD_FORMAT = 1
# Rows dequantized per call: bounds the temporaries of the block decoders.
DEQUANTIZE_ROWS = 4096

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


# -- reading a header --------------------------------------------------------------------


class _Truncated(Exception):
    pass


class _Cursor:
    """Sequential reads from a memory map; any read past the end raises _Truncated."""

    def __init__(self, buf: mmap.mmap, order: str) -> None:
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
    try:
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_size < 4:
                raise ModelInvalidError(f"not a GGUF model file: {path}")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(buf, path)
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"model file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise ModelNotFoundError(f"model path is a directory, not a GGUF file: {path}") from exc
    except OSError as exc:
        raise ModelNotFoundError(f"cannot read model file {path}: {exc.strerror}") from exc


def _parse(buf: mmap.mmap, path: Path) -> Header:
    if buf[:4] != MAGIC:
        raise ModelInvalidError(f"not a GGUF model file: {path}")
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
        raise ModelInvalidError(f"GGUF header is truncated: {path}") from exc
    alignment = _int(metadata.get("general.alignment")) or DEFAULT_ALIGNMENT
    data_start = (cur.pos + alignment - 1) // alignment * alignment
    return Header(version, metadata, tuple(tensors), data_start)


def read_tensor(path: Path, name: str, header: Header | None = None) -> Any:
    """One tensor's values as a float32 numpy array (dequantized), shaped as numpy reads
    ggml (dimensions reversed). Only that tensor's bytes are read, and the header once
    for several tensors when the caller passes it."""
    import gguf.quants
    import numpy as np
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize

    header = header or read_header(path)
    found = {t.name: t for t in header.tensors}
    if name not in found:
        raise ModelInvalidError(f"{path.name} has no tensor {name}")
    info = found[name]
    qtype = GGMLQuantizationType(info.ggml_type)
    block, block_bytes = GGML_QUANT_SIZES[qtype]
    row = info.shape[0] if info.shape else 1
    rows = info.n_elements // row
    row_bytes = row // block * block_bytes
    start = header.data_start + info.offset
    with path.open("rb") as f:
        f.seek(start)
        data = f.read(rows * row_bytes)
    if len(data) != rows * row_bytes:
        raise ModelInvalidError(f"GGUF file is truncated: {path}")
    raw = np.frombuffer(data, dtype=np.uint8).reshape(rows, row_bytes)
    kind = getattr(gguf.quants, qtype.name, None)
    if kind is None or not hasattr(kind, "dequantize_rows"):  # F32, F16: one numpy view
        values = np.asarray(dequantize(raw, qtype), dtype=np.float32)
        return values.reshape(tuple(reversed(info.shape)))
    # gguf's `dequantize` makes a Python call per 16 rows: 0.4 s for a 49152-row output
    # head. Its per-type block code over a few thousand rows at a time gives the same
    # values in a tenth of that.
    kind.init_grid()
    values = np.empty((rows, row), dtype=np.float32)
    for first in range(0, rows, DEQUANTIZE_ROWS):
        part = raw[first : first + DEQUANTIZE_ROWS]
        into = values[first : first + len(part)]
        if qtype == GGMLQuantizationType.Q8_0:  # tied embeddings' usual type: no temporaries
            blocks = part.reshape(-1, block_bytes)
            scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
            np.multiply(blocks[:, 2:].view(np.int8), scale, out=into.reshape(-1, block))
        else:
            into[:] = kind.dequantize_rows(part)
    return values.reshape(tuple(reversed(info.shape)))


# -- constants from the gguf package -------------------------------------------------------


@cache
def _constants() -> ModuleType:
    """gguf.constants without the rest of the package (it only needs the stdlib)."""
    spec = importlib.util.find_spec("gguf")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        try:
            module_spec = importlib.util.spec_from_file_location(
                "_llmcli_gguf_constants", os.path.join(folder, "constants.py")
            )
            if module_spec is None or module_spec.loader is None:
                continue
            module = importlib.util.module_from_spec(module_spec)
            # Enum classes look their module up while being created.
            sys.modules[module_spec.name] = module
            module_spec.loader.exec_module(module)
            return module
        except Exception:  # a future layout of the package: use the normal import
            sys.modules.pop("_llmcli_gguf_constants", None)
            break
    import gguf.constants

    return gguf.constants


def ggml_type_name(ggml_type: int) -> str:
    try:
        return str(_constants().GGMLQuantizationType(ggml_type).name)
    except ValueError:
        return f"type{ggml_type}"


def ggml_type_bytes(ggml_type: int, n_elements: int) -> int | None:
    """Bytes that n_elements of this type take (blocks of block_size values)."""
    c = _constants()
    try:
        block, size = c.GGML_QUANT_SIZES[c.GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        return None
    return int(n_elements // block * size)


def file_type_name(file_type: int) -> str:
    """general.file_type as people write it: 15 -> Q4_K_M, 3 -> Q4_1, 0 -> F32."""
    try:
        name = str(_constants().LlamaFileType(file_type).name)
    except ValueError:
        return f"type {file_type}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


# -- the card ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorTypeShare:
    """How much of the model is stored in one ggml type."""

    type: str
    tensors: int
    parameters: int
    bytes: int | None


@dataclass(frozen=True)
class ModelCard:
    path: str
    name: str | None
    architecture: str | None
    size_label: str | None
    parameters: int
    layers: int | None
    attention_heads: int | None
    kv_heads: int | None
    embedding_length: int | None
    feed_forward_length: int | None
    context_length: int | None
    vocab_size: int | None
    tokenizer_model: str | None
    experts: int | None
    experts_used: int | None
    pooling_type: int | None
    quantization: str | None
    file_type: int | None
    tensor_types: tuple[TensorTypeShare, ...]
    tensor_count: int
    size_bytes: int
    license: str | None
    chat_template: str | None
    split_count: int
    split_parts_found: int
    gguf_version: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    @property
    def bits_per_weight(self) -> float | None:
        if self.parameters <= 0:
            return None
        return self.size_bytes * 8 / self.parameters

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        data["has_chat_template"] = self.has_chat_template
        data["bits_per_weight"] = (
            round(self.bits_per_weight, 3) if self.bits_per_weight is not None else None
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        data["tensor_types"] = tuple(TensorTypeShare(**t) for t in data["tensor_types"])
        return cls(**data)


_SPLIT_NAME = re.compile(r"^(?P<stem>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


def split_parts(path: Path, count: int) -> list[Path]:
    """The files of a split GGUF (`name-00001-of-00003.gguf`), from any one of them."""
    match = _SPLIT_NAME.match(path.name)
    if count <= 1 or match is None:
        return [path]
    stem = match["stem"]
    return [path.with_name(f"{stem}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


def _int(value: Any) -> int | None:
    """An integer key; per-layer arrays (some models vary heads by layer) give their max."""
    if isinstance(value, ArrayInfo):
        numbers = [v for v in value.values or () if isinstance(v, int)]
        return max(numbers) if numbers else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _tensor_mix(tensors: Iterable[TensorInfo]) -> tuple[TensorTypeShare, ...]:
    counts: dict[int, list[int]] = {}
    for t in tensors:
        entry = counts.setdefault(t.ggml_type, [0, 0])
        entry[0] += 1
        entry[1] += t.n_elements
    shares = []
    for ggml_type, (n, params) in counts.items():
        name, size = ggml_type_name(ggml_type), ggml_type_bytes(ggml_type, params)
        shares.append(TensorTypeShare(name, n, params, size))
    return tuple(sorted(shares, key=lambda s: (-(s.bytes or 0), s.type)))


def build_card(path: Path) -> ModelCard:
    """Read the header (and those of the other parts of a split model) into a card."""
    header = read_header(path)
    meta = header.metadata
    split_count = _int(meta.get("split.count")) or 1
    parts = split_parts(path, split_count)
    tensors = list(header.tensors)
    size = path.stat().st_size
    found = 1
    if len(parts) > 1:
        tensors, size, found = [], 0, 0
        for part in parts:
            if not part.is_file():
                continue
            part_header = header if part == path else read_header(part)
            if _int(part_header.metadata.get("split.no")) == 0 and part != path:
                meta = part_header.metadata  # the first part holds the full metadata
            tensors += part_header.tensors
            size += part.stat().st_size
            found += 1

    arch = _str(meta.get("general.architecture"))

    def arch_key(suffix: str) -> Any:
        return meta.get(f"{arch}.{suffix}") if arch else None

    heads = _int(arch_key("attention.head_count"))
    kv_heads = _int(arch_key("attention.head_count_kv"))
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = tokens.count if isinstance(tokens, ArrayInfo) else _int(arch_key("vocab_size"))
    file_type = _int(meta.get("general.file_type"))
    mix = _tensor_mix(tensors)
    quant = file_type_name(file_type) if file_type is not None else None
    if quant is None and mix:
        quant = mix[0].type  # no file-type key: name it after the bulk of the bytes
    return ModelCard(
        path=str(path),
        name=_str(meta.get("general.name")),
        architecture=arch,
        size_label=_str(meta.get("general.size_label")),
        parameters=sum(t.n_elements for t in tensors),
        layers=_int(arch_key("block_count")),
        attention_heads=heads,
        # llama.cpp's own default: as many key/value heads as query heads.
        kv_heads=kv_heads if kv_heads is not None else heads,
        embedding_length=_int(arch_key("embedding_length")),
        feed_forward_length=_int(arch_key("feed_forward_length")),
        context_length=_int(arch_key("context_length")),
        vocab_size=vocab,
        tokenizer_model=_str(meta.get("tokenizer.ggml.model")),
        experts=_int(arch_key("expert_count")),
        experts_used=_int(arch_key("expert_used_count")),
        pooling_type=_int(arch_key("pooling_type")),
        quantization=quant,
        file_type=file_type,
        tensor_types=mix,
        tensor_count=len(tensors),
        size_bytes=size,
        license=_str(meta.get("general.license")),
        chat_template=_str(meta.get("tokenizer.chat_template")),
        split_count=split_count,
        split_parts_found=found,
        gguf_version=header.version,
    )


# -- the cache ---------------------------------------------------------------------------


def _cache_file(path: Path) -> Path | None:
    try:
        resolved = path.resolve()
        st = resolved.stat()
    except OSError:
        return None
    key = f"{CARD_FORMAT}\0{resolved}\0{st.st_size}\0{st.st_mtime_ns}"
    return (
        config.user_cache_dir()
        / "cards"
        / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")
    )


def model_card(path: Path, *, use_cache: bool = True) -> ModelCard:
    """The card for a GGUF file; from the cache when the file has not changed.

    A split model's card depends on its other parts too, so those are never cached.
    """
    cached = _cache_file(path) if use_cache else None
    if cached is not None:
        try:
            card = ModelCard.from_dict(json.loads(cached.read_text(encoding="utf-8")))
            return replace(card, path=str(path))  # the same file may be named differently
        except (OSError, ValueError, TypeError, KeyError):
            pass  # missing or unreadable entry: rebuild it
    card = build_card(path)
    if cached is not None and card.split_count <= 1:
        _write_atomically(cached, json.dumps(card.as_dict(), ensure_ascii=False))
    return card


def _write_atomically(target: Path, text: str) -> None:
    """Best effort: a read-only or full cache directory only costs speed."""
    with contextlib.suppress(OSError):
        write_atomic(target, text)
