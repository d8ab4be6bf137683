"""llmcli run versus the engine it wraps, measured side by side in one run.

Prints, for the same model, threads and prompt:
- generation tokens/s of `llmcli run` (its own --json figure) over a direct
  llama-cpp-python loop with the same settings (the engine's best), and over the
  engine with its defaults (what a plain `Llama(model_path)` gives);
- the wall time of `llmcli --help`.

Runs alternate (A, B, C, A, B, C...) so drift on a shared machine hits all sides alike.
Usage: python benchmarks/bench_run.py [--reps 5] [--tokens 128]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testmodel import model_path

PROMPT = "1, 2, 3, 4, 5, 6, 7, 8,"


def llmcli_tps(model: Path, tokens: int) -> float:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmcli",
            "run",
            "-m",
            str(model),
            "--raw",
            "--json",
            "--temperature",
            "0",
            "-n",
            str(tokens),
            PROMPT,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout)["timings"]["generation_tokens_per_s"])


def direct_tps(model: Path, tokens: int, *, tuned: bool) -> float:
    """Greedy generation straight through llama-cpp-python, timed first to last token."""
    code = f"""
import time, llama_cpp
from llmcli.config import usable_cores
t = usable_cores()
tuned = dict(n_ctx=4096, n_threads=t, n_threads_batch=t, flash_attn=True, n_batch=256)
kw = tuned if {tuned} else {{}}
llm = llama_cpp.Llama({str(model)!r}, verbose=False, **kw)
ids = llm.tokenize({PROMPT!r}.encode())
n = 0
for tok in llm.generate(ids, temp=0.0):
    if n == 0:
        first = time.perf_counter()
    n += 1
    if n == {tokens}:
        break
print((n - 1) / (time.perf_counter() - first))
llm.close()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def help_seconds() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "llmcli", "--help"], capture_output=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    model = model_path()

    ours, best, defaults, helps = [], [], [], []
    for _ in range(args.reps):
        ours.append(llmcli_tps(model, args.tokens))
        best.append(direct_tps(model, args.tokens, tuned=True))
        defaults.append(direct_tps(model, args.tokens, tuned=False))
        helps.append(help_seconds())

    med = statistics.median
    print(f"model: {model.name}, tg{args.tokens}, {args.reps} alternating repetitions")
    print(f"llmcli run:                      {med(ours):7.1f} tok/s")
    print(f"llama-cpp-python, same settings: {med(best):7.1f} tok/s")
    print(f"llama-cpp-python, its defaults:  {med(defaults):7.1f} tok/s")
    ratios = [o / b for o, b in zip(ours, best, strict=True)]
    print(
        f"ratio llmcli / engine best:      {med(ratios):7.3f} "
        f"(per rep: {', '.join(f'{r:.3f}' for r in ratios)})"
    )
    print(f"ratio llmcli / engine defaults:  {med(ours) / med(defaults):7.3f}")
    print(f"llmcli --help wall time:         {med(helps):7.3f} s (median)")


if __name__ == "__main__":
    main()
