"""Cost of looking inside: `attention` and `lens` against one plain forward pass.

On the test model, with the model loaded once, for a text of 64 tokens:
- plain: one forward pass as generation runs it (the model's own context);
- attention: `llmcli.engine.attention.attention` (capture context, eval callback, the
  middle layer kept whole and every head of every layer summarised);
- lens, as the command computes it, reading the output head from the GGUF each time:
  for the table on a terminal of --columns columns (the likeliest token at the last
  positions that fit), and for every position (--json, TSV: the top 5);
- lens of every position with the head already read (the projection alone).
Runs alternate (plain, attention, lens, ...) so drift hits all alike; medians and the
ratio to the plain pass are printed. The bar is 3x. numpy's BLAS uses every core
whatever --threads says: compare at --threads equal to the cores for a fair ratio.

Usage: python benchmarks/bench_inside.py [--reps 5] [--threads N] [--columns 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testmodel import model_path

from llmcli.engine import attention, lens
from llmcli.engine.model import Model
from llmcli.engine.types import LoadOptions
from llmcli.ui.lens_view import visible_positions

BAR = 3.0
N_TOKENS = 64
TEXT = (
    "The old lighthouse keeper climbed the stairs every night, lit the lamp, and watched "
    "the ships pass safely through the narrow strait. "
) * 4


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--columns", type=int, default=200, help="terminal width for the table")
    args = parser.parse_args()
    path = model_path()
    with Model(LoadOptions(path, n_ctx=256, n_threads=args.threads)) as model:
        tokens = model.completion_tokens(TEXT)[:N_TOKENS]
        assert len(tokens) == N_TOKENS
        head = lens.output_head(path)

        def plain() -> None:
            model.llama.reset()  # type: ignore[no-untyped-call]
            model.llama.eval(tokens)

        shown = visible_positions(N_TOKENS, args.columns)
        runs: dict[str, Callable[[], object]] = {
            "plain forward pass": plain,
            "attention": lambda: attention.attention(model, tokens),
            f"lens, {args.columns}-column table ({shown} positions)": lambda: lens.lens(
                model, tokens, top_k_tokens=1, last_positions=shown
            ),
            f"lens, all {N_TOKENS} positions": lambda: lens.lens(model, tokens),
            f"lens, all {N_TOKENS}, head already read": lambda: lens.lens(model, tokens, head=head),
        }
        for action in runs.values():  # warm caches and thread pools once
            action()
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.reps):
            for name, action in runs.items():
                times[name].append(timed(action))
    print(
        f"{path.name}, {N_TOKENS} tokens, engine setup {model.setup.name}, "
        f"{model.threads} threads, median of {args.reps}"
    )
    base = statistics.median(times["plain forward pass"])
    for name, values in times.items():
        median = statistics.median(values)
        ratio = median / base
        verdict = "" if name.startswith("plain") else (" ok" if ratio <= BAR else " OVER the bar")
        print(f"  {name:<36} {median * 1000:8.1f} ms  {ratio:5.2f}x{verdict}")
    print(f"bar: {BAR:.0f}x a plain forward pass")


if __name__ == "__main__":
    main()
