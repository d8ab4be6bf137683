"""How far a position's logits move when it is computed in a batch rather than alone.

Evaluates a prefix, then the next tokens once as one batch and once one token at a time,
and compares the logits of the same positions: the largest and the median difference,
and at how many positions the likeliest token differs. Run at several thread counts,
with flash attention on and off, and with a batch size of 1 (which computes alike).

Usage: python benchmarks/batch_logits.py [--prefix 500] [--tokens 100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testmodel import model_path

TEXT = (
    "The lighthouse at Cape Verity was built in 1871 by the engineer Margaret Hale. "
    "It stands forty-two metres tall. "
) * 60


def logits(threads: int, flash: bool, ubatch: int, prefix: int, tokens: int, batched: bool) -> Any:
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(
        str(model_path()),
        n_ctx=2048,
        n_batch=512,
        n_ubatch=ubatch,
        n_threads=threads,
        logits_all=True,
        flash_attn=flash,
        verbose=False,
    )
    ids = llm.tokenize(TEXT.encode())[: prefix + tokens]
    llm.eval(ids[:prefix])
    if batched:
        llm.eval(ids[prefix:])
        return np.array(llm.scores[prefix : prefix + tokens])
    rows = []
    for token in ids[prefix:]:
        llm.eval([token])
        rows.append(np.array(llm.scores[llm.n_tokens - 1]))
    return np.array(rows)


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=100)
    args = parser.parse_args()
    print(f"{model_path().name}: {args.tokens} positions after a {args.prefix}-token prefix")
    for threads, flash, ubatch in [(1, False, 512), (2, False, 512), (2, True, 512), (2, True, 1)]:
        a = logits(threads, flash, ubatch, args.prefix, args.tokens, batched=True)
        b = logits(threads, flash, ubatch, args.prefix, args.tokens, batched=False)
        diff = np.abs(a - b).max(axis=1)
        flips = int((a.argmax(1) != b.argmax(1)).sum())
        print(
            f"  threads {threads}, flash attention {'on ' if flash else 'off'}, batch size "
            f"{ubatch:>3}: max {diff.max():.3f}, median {np.median(diff):.3f}, "
            f"likeliest token differs at {flips}/{args.tokens}"
        )


if __name__ == "__main__":
    main()
