"""The model card from a GGUF file's header, read without loading the model.

`gguf.GGUFReader` parses every key and array eagerly (2.4 s for a 49k-token vocabulary).
A card needs far less: `llmcli.gguf_file.header` walks the header itself, stepping over big
arrays, and never reads tensor data. Cards are also cached per (path, size, mtime) in the
user's cache directory.

The package `gguf` supplies only constants (type names, block sizes, file-type names);
its constants module is loaded on its own because `import gguf` pulls in numpy and the
whole writer (about 0.1 s, a third of the time budget of `llmcli show`). `read_tensor`
dequantizes one tensor with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from llmcli import config
from llmcli.atomic import write_atomic
from llmcli.errors import ModelInvalidError
from llmcli.gguf_file.header import ArrayInfo as ArrayInfo
from llmcli.gguf_file.header import Header, TensorInfo, int_value
from llmcli.gguf_file.header import read_header as read_header  # also read from here (engine.lens)

# Bumped whenever ModelCard changes shape, so stale cache entries are ignored.
CARD_FORMAT = 1
# Rows dequantized per call: bounds the temporaries of the block decoders.
DEQUANTIZE_ROWS = 4096


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
    split_count = int_value(meta.get("split.count")) or 1
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
            if int_value(part_header.metadata.get("split.no")) == 0 and part != path:
                meta = part_header.metadata  # the first part holds the full metadata
            tensors += part_header.tensors
            size += part.stat().st_size
            found += 1

    arch = _str(meta.get("general.architecture"))

    def arch_key(suffix: str) -> Any:
        return meta.get(f"{arch}.{suffix}") if arch else None

    heads = int_value(arch_key("attention.head_count"))
    kv_heads = int_value(arch_key("attention.head_count_kv"))
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = tokens.count if isinstance(tokens, ArrayInfo) else int_value(arch_key("vocab_size"))
    file_type = int_value(meta.get("general.file_type"))
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
        layers=int_value(arch_key("block_count")),
        attention_heads=heads,
        # llama.cpp's own default: as many key/value heads as query heads.
        kv_heads=kv_heads if kv_heads is not None else heads,
        embedding_length=int_value(arch_key("embedding_length")),
        feed_forward_length=int_value(arch_key("feed_forward_length")),
        context_length=int_value(arch_key("context_length")),
        vocab_size=vocab,
        tokenizer_model=_str(meta.get("tokenizer.ggml.model")),
        experts=int_value(arch_key("expert_count")),
        experts_used=int_value(arch_key("expert_used_count")),
        pooling_type=int_value(arch_key("pooling_type")),
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
