"""100 short prompts: `llmcli run --batch` versus 100 separate `llmcli run` calls.

Both on the same model and threads, in one run, greedy with the same token limit.
Bar: the batch takes at most a fifth of the time of separate calls.
Usage: python benchmarks/bench_batch.py [--prompts 100] [--tokens 16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testmodel import model_path

SUBJECTS = [
    "the sea",
    "a cat",
    "autumn",
    "a city",
    "bread",
    "the moon",
    "a river",
    "snow",
    "a violin",
    "a garden",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    model = model_path()
    prompts = [
        f"Say one sentence about {SUBJECTS[i % len(SUBJECTS)]} ({i})." for i in range(args.prompts)
    ]
    common = ["-m", str(model), "--temperature", "0", "-n", str(args.tokens)]

    start = time.perf_counter()
    batch = subprocess.run(
        [sys.executable, "-m", "llmcli", "run", "--batch", "-", *common],
        input="\n".join(prompts) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    batch_s = time.perf_counter() - start
    batch_texts = [json.loads(line)["text"] for line in batch.stdout.splitlines()]

    start = time.perf_counter()
    single_texts = []
    for prompt in prompts:
        out = subprocess.run(
            [sys.executable, "-m", "llmcli", "run", "--json", *common, prompt],
            capture_output=True,
            text=True,
            check=True,
        )
        single_texts.append(json.loads(out.stdout)["text"])
    single_s = time.perf_counter() - start

    same = sum(a == b for a, b in zip(batch_texts, single_texts, strict=True))
    print(f"{args.prompts} prompts, {args.tokens} tokens each, model {model.name}")
    print(f"  run --batch:        {batch_s:7.2f} s")
    print(f"  separate runs:      {single_s:7.2f} s")
    print(f"  ratio batch/single: {batch_s / single_s:.3f} (bar: <= 0.2)")
    print(f"  same answers: {same}/{args.prompts}")


if __name__ == "__main__":
    main()
