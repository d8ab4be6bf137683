"""This checkout's generation speed over another commit's, side by side in one run.

For a change to the decode path: the same CLI commands, model and threads, run
alternately from a worktree of REF and from this checkout, so that drift on a shared
machine hits both alike. Prints the medians and the ratio (this / REF) of:
- `run` generation tokens/s (Model.generate: run, chat, batch lines);
- `run --batch --parallel 2` wall time for a few prompts (the Scheduler: serve too).

Usage: python benchmarks/bench_against.py REF [--reps 5] [--tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testmodel import model_path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "1, 2, 3, 4, 5, 6, 7, 8,"
BATCH = "".join(f"Count from {n} to {n + 20}.\n" for n in range(6))


def llmcli(tree: Path, *args: str, stdin: str | None = None) -> str:
    # PYTHONPATH puts the tree's llmcli ahead of the installed (editable) one.
    env = {**os.environ, "PYTHONPATH": str(tree), "LLMCLI_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-m", "llmcli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tree,
    )
    return out.stdout


def run_tps(tree: Path, model: Path, tokens: int) -> float:
    out = llmcli(
        tree, "run", "-m", str(model), "--raw", "--json", "--temperature", "0",
        "-n", str(tokens), "--no-prompt-cache", PROMPT,
    )  # fmt: skip
    return float(json.loads(out)["timings"]["generation_tokens_per_s"])


def batch_seconds(tree: Path, model: Path, tokens: int) -> float:
    start = time.perf_counter()
    llmcli(
        tree, "run", "-m", str(model), "--batch", "-", "--parallel", "2",
        "--temperature", "0", "-n", str(tokens), stdin=BATCH,
    )  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the commit to compare with, e.g. HEAD~1")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    model = model_path()
    with tempfile.TemporaryDirectory(prefix="llmcli-ref-") as folder:
        ref_tree = Path(folder) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(ref_tree), args.ref],
            check=True,
        )
        try:
            figures: dict[str, list[float]] = {k: [] for k in ("tps", "ref_tps", "b", "ref_b")}
            for _ in range(args.reps):
                figures["ref_tps"].append(run_tps(ref_tree, model, args.tokens))
                figures["tps"].append(run_tps(ROOT, model, args.tokens))
                figures["ref_b"].append(batch_seconds(ref_tree, model, args.tokens))
                figures["b"].append(batch_seconds(ROOT, model, args.tokens))
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(ref_tree)],
                check=False,
            )
    med = {k: statistics.median(v) for k, v in figures.items()}
    print(f"model: {model.name}, {args.reps} alternating repetitions, against {args.ref}")
    print(
        f"run, tg{args.tokens}: this {med['tps']:.1f} tok/s, {args.ref} {med['ref_tps']:.1f} "
        f"tok/s, ratio {med['tps'] / med['ref_tps']:.3f} (higher is faster)"
    )
    print(
        f"run --batch --parallel 2, {BATCH.count(chr(10))} prompts: this {med['b']:.2f} s, "
        f"{args.ref} {med['ref_b']:.2f} s, ratio {med['b'] / med['ref_b']:.3f} (lower is faster)"
    )


if __name__ == "__main__":
    main()
