"""A real LoRA adapter GGUF for the test model, written with the `gguf` package.

Laid out as llama.cpp's convert_lora_to_gguf.py writes one: `general.type = adapter`,
`adapter.type = lora`, `adapter.lora.alpha`, and for each adapted weight W (ggml shape
[n_in, n_out]) the pair `W.lora_a` [n_in, rank] and `W.lora_b` [rank, n_out], so that
llama.cpp adds scale * alpha / rank * B @ A to W's output. Small random matrices on the
attention's query and output projections of every layer: enough to change the answer.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from llmcli.gguf_file.header import read_header


def write_lora(
    model: Path,
    dst: Path,
    *,
    rank: int = 4,
    alpha: float = 4.0,
    seed: int = 0,
    architecture: str | None = None,
    zero: bool = False,
) -> Path:
    """A LoRA for `model` at `dst`. `zero`: B is all zeros (an adapter that changes
    nothing); `architecture`: claim another one (an adapter llama.cpp must refuse)."""
    header = read_header(model)
    arch = architecture or str(header.metadata["general.architecture"])
    writer = gguf.GGUFWriter(str(dst), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    rng = np.random.default_rng(seed)
    for tensor in header.tensors:
        if not tensor.name.endswith(("attn_q.weight", "attn_output.weight")):
            continue
        n_in, n_out = (int(d) for d in tensor.shape[:2])
        # numpy's shape is ggml's reversed.
        a = rng.standard_normal((rank, n_in)).astype(np.float32) * 0.05
        b = rng.standard_normal((n_out, rank)).astype(np.float32) * 0.05
        writer.add_tensor(f"{tensor.name}.lora_a", a)
        writer.add_tensor(f"{tensor.name}.lora_b", np.zeros_like(b) if zero else b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst
