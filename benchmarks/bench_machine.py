"""Does llmcli run as fast as this machine allows? Side by side, in one run:

1. `llmcli bench` (the engine setup llmcli chose) over llama.cpp's llama-bench in its best
   working setting: `--repack 1`, `--repack 0`, and `--repack 1 -ub 1` are each tried, a
   setting that crashes is left out, and the best prompt and the best generation speed
   are compared separately. Bars: 0.9 or more each.
2. With one core kept busy by another process: generation tok/s with llmcli's default
   threads over the better of `--threads 1` and `--threads 2` (bar: 0.85 or more).

Prints the CPU and its flags with the figures. llama-bench is built once from the sources
vendored in the installed llama-cpp-python (see bench_vs_llama_bench.py).
Usage: python benchmarks/bench_machine.py [--rounds 3] [--reps 3] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_vs_llama_bench import build_llama_bench
from testmodel import model_path

SETTINGS = {
    "--repack 1": ["--repack", "1"],
    "--repack 0": ["--repack", "0"],
    "--repack 1 -ub 1": ["--repack", "1", "-ub", "1"],
}


def cpu_line() -> str:
    from llmcli.tuning.identity import cpu_description

    name, flags = cpu_description()
    shown = [f for f in flags if f.startswith(("avx", "amx"))]
    return f"{name}; flags: {' '.join(shown)}"


def llama_bench(
    binary: Path, model: Path, threads: int, reps: int, extra: list[str], n_gen: int = 128
) -> dict[str, float] | None:
    """pp512 and tg speeds, or None when this setting crashes here."""
    args = [str(binary), "-m", str(model), "-t", str(threads), "-r", str(reps), "-fa", "1"]
    args += ["-p", "512", "-n", str(n_gen), "-o", "json", *extra]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    return {("pp" if r["n_prompt"] else "tg"): float(r["avg_ts"]) for r in json.loads(proc.stdout)}


def llmcli_bench(
    model: Path, reps: int, threads: int | None = None, n_prompt: int = 512
) -> dict[str, float]:
    args = [sys.executable, "-m", "llmcli", "bench", "-m", str(model), "-r", str(reps)]
    args += ["--n-prompt", str(n_prompt), "--n-gen", "128", "--json"]
    if threads is not None:
        args += ["--threads", str(threads)]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return {r["test"][:2]: float(r["mean_tps"]) for r in json.loads(out.stdout)}


@contextmanager
def busy_core() -> Iterator[None]:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        spinner.kill()
        spinner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--llama-bench", type=Path, default=None)
    parser.add_argument("--model", type=Path, default=None, help="default: the test model")
    args = parser.parse_args()
    from llmcli.config import usable_cores

    threads = usable_cores()
    binary = args.llama_bench or build_llama_bench()
    model = args.model or model_path()
    # Measure llmcli's setup once before timing anything (the first load probes).
    llmcli_bench(model, 1, threads, n_prompt=16)

    ours: dict[str, list[float]] = {"pp": [], "tg": []}
    theirs: dict[str, dict[str, list[float]]] = {s: {"pp": [], "tg": []} for s in SETTINGS}
    crashed: set[str] = set()
    for _ in range(args.rounds):  # alternate, so machine noise hits all alike
        for key, value in llmcli_bench(model, args.reps, threads).items():
            ours[key].append(value)
        for name, extra in SETTINGS.items():
            if name in crashed:
                continue
            found = llama_bench(binary, model, threads, args.reps, extra)
            if found is None:
                crashed.add(name)
                continue
            for key, value in found.items():
                theirs[name][key].append(value)

    print(f"CPU: {cpu_line()}")
    print(f"model {model.name}, {threads} threads, flash attention on, {args.rounds} rounds")
    for name in crashed:
        print(f"  llama-bench {name}: crashed on this CPU, left out")
    for key, test in (("pp", "pp512"), ("tg", "tg128")):
        mine = statistics.median(ours[key])
        best_name, best = max(
            ((n, statistics.median(v[key])) for n, v in theirs.items() if v[key]),
            key=lambda item: item[1],
        )
        others = ", ".join(
            f"{n} {statistics.median(v[key]):.1f}" for n, v in theirs.items() if v[key]
        )
        print(
            f"  {test}: llmcli {mine:7.1f} tok/s, llama-bench best {best:7.1f} ({best_name}), "
            f"ratio {mine / best:.3f} (bar: >= 0.9)  [llama-bench: {others}]"
        )

    default: list[float] = []
    pinned: dict[int, list[float]] = {1: [], 2: []}
    with busy_core():
        for _ in range(args.rounds):
            default.append(llmcli_bench(model, args.reps, None, n_prompt=0)["tg"])
            for n in pinned:
                pinned[n].append(llmcli_bench(model, args.reps, n, n_prompt=0)["tg"])
    best_n = max(pinned, key=lambda n: statistics.median(pinned[n]))
    d, b = statistics.median(default), statistics.median(pinned[best_n])
    print("  one core kept busy by another process:")
    print(
        f"  tg128: default threads {d:7.1f} tok/s, --threads 1 "
        f"{statistics.median(pinned[1]):.1f}, --threads 2 {statistics.median(pinned[2]):.1f}; "
        f"ratio over the better ({best_n}) {d / b:.3f} (bar: >= 0.85)"
    )


if __name__ == "__main__":
    main()
