"""A small reranker GGUF made from the test model, for tests of rank pooling.

No reranker GGUF small enough ships in a registry package, so one is built the way
llama.cpp's converter lays out a Qwen3 reranker: the test model's weights under the
`qwen3` architecture (whose loader takes a classification head; `llama`'s does not),
unit q/k norms (Qwen3 has them, SmolLM2 does not), `pooling_type` 4 (rank), two output
labels, a seeded random `cls.output.weight`, and a `rerank` prompt template as Qwen3's
reranker GGUFs carry. Its scores are deterministic but mean nothing: tests check shapes,
ordering by the returned scores and errors, never which document is relevant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter

RERANK_TEMPLATE = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the "
    "Query.<|im_end|>\n<|im_start|>user\n<Query>: {query}\n<Document>: {document}"
    "<|im_end|>\n<|im_start|>assistant\n"
)
_ARCH = "qwen3"


def _value(field: Any) -> Any:
    parts, data, types = field.parts, field.data, field.types
    if types[0] == GGUFValueType.ARRAY:
        if types[1] == GGUFValueType.STRING:
            return [bytes(parts[i]).decode("utf-8") for i in data]
        return [parts[i][0].item() for i in data]
    if types[0] == GGUFValueType.STRING:
        return bytes(parts[data[0]]).decode("utf-8")
    return parts[data[0]][0].item()


def make_reranker(src: Path, dst: Path) -> Path:
    reader = GGUFReader(src)
    source_arch = _value(reader.fields["general.architecture"])
    writer = GGUFWriter(dst, _ARCH)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        name = _ARCH + key[len(str(source_arch)) :] if key.startswith(f"{source_arch}.") else key
        sub = field.types[1] if field.types[0] == GGUFValueType.ARRAY else None
        writer.add_key_value(name, _value(field), field.types[0], sub_type=sub)
    writer.add_key_value(f"{_ARCH}.pooling_type", 4, GGUFValueType.UINT32)
    writer.add_key_value(
        f"{_ARCH}.classifier.output_labels",
        ["yes", "no"],
        GGUFValueType.ARRAY,
        sub_type=GGUFValueType.STRING,
    )
    writer.add_key_value("tokenizer.chat_template.rerank", RERANK_TEMPLATE, GGUFValueType.STRING)
    n_embd = int(_value(reader.fields[f"{source_arch}.embedding_length"]))
    heads = int(_value(reader.fields[f"{source_arch}.attention.head_count"]))
    layers = int(_value(reader.fields[f"{source_arch}.block_count"]))
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, np.asarray(tensor.data), raw_dtype=tensor.tensor_type)
    for i in range(layers):
        for norm in ("attn_q_norm", "attn_k_norm"):
            writer.add_tensor(f"blk.{i}.{norm}.weight", np.ones(n_embd // heads, np.float32))
    rng = np.random.default_rng(0)
    head = (rng.standard_normal((2, n_embd)) * 0.02).astype(np.float32)
    writer.add_tensor("cls.output.weight", head)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst
