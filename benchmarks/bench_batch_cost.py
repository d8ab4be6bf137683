"""What a batch of n tokens costs, in single-token steps: the table prompt-lookup
decoding plans its drafts with (llmcli/engine/lookup.py, BATCH_COST_NEAR and _FAR).

For each context length, decodes batches of each size on top of that many cached
positions (logits for every row, as verification needs), sizes interleaved so drift hits
all alike, and prints the median time of each size over the median time of one token.

Usage: python benchmarks/bench_batch_cost.py [--reps 9] [--threads N] [--model PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testmodel import model_path

SIZES = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32]
POSITIONS = [150, 1000, 2000]


def main() -> None:
    from llmcli.engine.model import Model
    from llmcli.engine.types import LoadOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    options = LoadOptions(path=args.model or model_path(), n_ctx=4096, n_threads=args.threads)
    with Model(options) as llm:
        kv = llm.kv
        for position in POSITIONS:
            kv.rewind(0)
            kv.evaluate([100 + (i * 7) % 900 for i in range(position)])
            times: dict[int, list[float]] = {n: [] for n in SIZES}
            for _ in range(args.reps):
                for n in SIZES:
                    kv.stage([200 + j for j in range(n)])
                    start = time.perf_counter()
                    kv.decode_staged()
                    times[n].append(time.perf_counter() - start)
                    kv.accept(0)
            one = statistics.median(times[1])
            costs = " ".join(f"{n}:{statistics.median(times[n]) / one:.2f}" for n in SIZES)
            print(f"{position} positions, 1 token {one * 1000:.2f} ms; n:cost {costs}")


if __name__ == "__main__":
    main()
