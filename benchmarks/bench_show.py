"""`llmcli show` speed, and llmcli's GGUF header reader versus gguf.GGUFReader.

Prints, for the test model:
- wall time of `llmcli show MODEL` as a user runs it (a fresh process each time), with the
  card cache warm (the usual case) and cold (first look at a file); the bar is 0.3 s;
- the header reader (`llmcli.gguf_file.info.build_card`, no cache) against `gguf.GGUFReader`
  on the same file, in one process, alternating A, B, A, B so drift hits both alike.

Usage: python benchmarks/bench_show.py [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testmodel import model_path

BAR_S = 0.3


def show_wall(model: Path, home: Path) -> float:
    env = {**os.environ, "LLMCLI_HOME": str(home)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "llmcli", "show", str(model)],
        env=env,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    model = model_path()

    with tempfile.TemporaryDirectory() as tmp:
        warm_home = Path(tmp) / "warm"
        show_wall(model, warm_home)  # fills the cache
        warm, cold = [], []
        for i in range(args.reps):
            warm.append(show_wall(model, warm_home))
            cold.append(show_wall(model, Path(tmp) / f"cold{i}"))

    import gguf

    from llmcli.gguf_file.info import build_card

    build_card(model)  # load the constants once, as a long-lived process would
    ours, theirs = [], []
    for _ in range(args.reps):
        start = time.perf_counter()
        build_card(model)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        gguf.GGUFReader(model)
        theirs.append(time.perf_counter() - start)

    med = statistics.median
    print(f"model: {model.name} ({model.stat().st_size / 1e6:.1f} MB), {args.reps} runs, medians")
    verdict = "under" if med(warm) < BAR_S else "OVER"
    print(f"llmcli show, cache warm:  {med(warm):.3f} s  ({verdict} the {BAR_S} s bar)")
    print(f"llmcli show, cache cold:  {med(cold):.3f} s")
    print(f"header reader (no cache): {med(ours) * 1000:.1f} ms")
    print(f"gguf.GGUFReader:          {med(theirs) * 1000:.1f} ms")
    print(f"reader speed-up:          {med(theirs) / med(ours):.0f}x")


if __name__ == "__main__":
    main()
