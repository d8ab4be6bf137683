"""`llmcli fit` from the Hub: bytes read and time for a 1 GB and a 5 GB model, against
the file's size, on the local Hub look-alike (tests/hubserver.py).

Each model is a real GGUF header (a llama-shaped model: metadata, a 32,000-token
vocabulary, tensor infos of Q8_0 tensors) followed by a sparse region as long as its
tensors: the file is as large as a real one on the server, costs no disk, and fit reads
only the header with HTTP range requests. Each run has a fresh, empty cache.

    python benchmarks/bench_fit.py [--reps 5] [--sizes 1,5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

import gguf  # noqa: E402
import numpy as np  # noqa: E402
from hubserver import FakeFile, FakeRepo, serve  # noqa: E402

VOCAB = 32000
ALIGN = 32
Q8_0 = gguf.GGMLQuantizationType.Q8_0


def _q8_bytes(elements: int) -> int:
    return elements // 32 * 34


@dataclass(frozen=True)
class Shape:
    n_embd: int
    n_ff: int
    heads: int
    kv_heads: int

    def layer_tensors(self, i: int) -> list[tuple[str, tuple[int, ...]]]:
        kv = self.n_embd // self.heads * self.kv_heads
        e, f = self.n_embd, self.n_ff
        return [
            (f"blk.{i}.attn_q.weight", (e, e)),
            (f"blk.{i}.attn_k.weight", (kv, e)),
            (f"blk.{i}.attn_v.weight", (kv, e)),
            (f"blk.{i}.attn_output.weight", (e, e)),
            (f"blk.{i}.ffn_gate.weight", (f, e)),
            (f"blk.{i}.ffn_up.weight", (f, e)),
            (f"blk.{i}.ffn_down.weight", (e, f)),
        ]


# Llama-2-like widths for about 1 GB and about 5 GB of Q8_0 weights.
SHAPES = {1: Shape(2048, 5632, 32, 4), 5: Shape(4096, 11008, 32, 8)}


def write_sparse_gguf(path: Path, gigabytes: int) -> int:
    """A GGUF of about `gigabytes` GB whose tensor data is a hole; returns where the
    data starts (the header's length)."""
    shape = SHAPES[gigabytes]
    tensors = [
        ("token_embd.weight", (VOCAB, shape.n_embd)),
        ("output.weight", (VOCAB, shape.n_embd)),
    ]
    layers = 0
    while sum(_q8_bytes(int(np.prod(s))) for _, s in tensors) < gigabytes * 10**9:
        tensors += shape.layer_tensors(layers)
        layers += 1
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(4096)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"<tok{i}>" for i in range(VOCAB)])
    writer.add_token_scores([0.0] * VOCAB)
    writer.add_token_types([1] * VOCAB)
    data = 0
    for name, dims in tensors:
        nbytes = _q8_bytes(int(np.prod(dims)))
        writer.add_tensor_info(name, dims, np.dtype(np.float32), nbytes, raw_dtype=Q8_0)
        data += -(-nbytes // ALIGN) * ALIGN
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    start = -(-path.stat().st_size // ALIGN) * ALIGN
    os.truncate(path, start + data)
    return start


class SparseFile(FakeFile):
    """A served file read from a memory map; its hash is made up rather than computed
    over gigabytes nobody downloads."""

    def __post_init__(self) -> None:
        head = bytes(memoryview(self.data)[: 1 << 20])
        self.sha256 = hashlib.sha256(head + str(len(self.data)).encode()).hexdigest()
        self.oid = hashlib.sha1(head).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sizes", default="1,5", help="GB, of 1 and 5")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    with tempfile.TemporaryDirectory() as scratch:
        repos, maps, headers = [], [], {}
        for gb in sizes:
            path = Path(scratch, f"big{gb}-Q8_0.gguf")
            headers[gb] = write_sparse_gguf(path, gb)
            with path.open("rb") as f:
                maps.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
            repos.append(FakeRepo(f"bench/big{gb}-GGUF", {path.name: SparseFile(maps[-1])}))
        rows = []
        with serve(repos) as hub:
            for gb, view in zip(sizes, maps, strict=True):
                times, reads, weights = [], [], 0
                for rep in range(args.reps):
                    home = Path(scratch, f"home-{gb}-{rep}")
                    env = {
                        **os.environ,
                        "HF_ENDPOINT": hub.url,
                        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
                        "HF_HUB_DISABLE_TELEMETRY": "1",
                        "HF_HOME": str(home / "hf"),
                        "HF_HUB_CACHE": str(home / "hf" / "hub"),
                        "LLMCLI_HOME": str(home / "llmcli"),
                    }
                    hub.sent.clear()
                    cmd = [sys.executable, "-m", "llmcli", "fit", f"bench/big{gb}-GGUF:Q8_0"]
                    cmd += ["--memory", "64GB", "--json"]
                    started = time.perf_counter()
                    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                    times.append(time.perf_counter() - started)
                    if proc.returncode != 0:
                        raise SystemExit(f"fit failed ({proc.returncode}):\n{proc.stderr}")
                    reads.append(sum(n for p, n in hub.sent if "/resolve/" in p))
                    weights = json.loads(proc.stdout)["weights_bytes"]
                rows.append((len(view), headers[gb], weights, reads, times))
            for view in maps:
                view.close()

    print(f"llmcli fit from the local Hub look-alike, {args.reps} runs each, fresh cache each")
    print(
        f"{'file':>10} {'weights':>10} {'header':>10} {'read':>10} {'read/file':>10} "
        f"{'median s':>9} {'best s':>7}"
    )
    for size, header, weights, reads, times in rows:
        read = statistics.median(reads)
        print(
            f"{size / 1e9:>7.2f} GB {weights / 1e9:>7.2f} GB {header / 1e6:>7.2f} MB "
            f"{read / 1e6:>7.2f} MB "
            f"{read / size:>10.5%} {statistics.median(times):>9.2f} {min(times):>7.2f}"
        )


if __name__ == "__main__":
    main()
