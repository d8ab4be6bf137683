"""`llmcli bench` against llama.cpp's own llama-bench, same model and threads, one run.

llama-bench is built from the llama.cpp sources vendored in the llama-cpp-python sdist
that llmcli runs on (same version), once, into ~/.cache/llmcli-bench; pass --llama-bench
to use a binary of your own. Bar: pp and tg within 5% of llama-bench.
Usage: python benchmarks/bench_vs_llama_bench.py [--reps 5] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testmodel import model_path

BUILD_ROOT = Path.home() / ".cache" / "llmcli-bench"


def build_llama_bench() -> Path:
    engine = version("llama-cpp-python")
    binary = BUILD_ROOT / f"llama.cpp-{engine}" / "build" / "bin" / "llama-bench"
    if binary.exists():
        return binary
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                tmp,
                f"llama-cpp-python=={engine}",
            ],
            check=True,
        )
        (sdist,) = Path(tmp).glob("*.tar.gz")
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        source = next(Path(tmp).glob("*/vendor/llama.cpp"))
        target = binary.parent.parent.parent
        subprocess.run(["cp", "-r", str(source), str(target)], check=True)
    subprocess.run(
        [
            "cmake",
            "-B",
            "build",
            "-DLLAMA_CURL=OFF",
            "-DGGML_NATIVE=ON",
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_SERVER=OFF",
            "-DCMAKE_BUILD_TYPE=Release",
        ],
        cwd=target,
        check=True,
    )
    subprocess.run(
        ["cmake", "--build", "build", "--target", "llama-bench", "-j", str(os.cpu_count() or 2)],
        cwd=target,
        check=True,
    )
    return binary


def run_llama_bench(binary: Path, model: Path, threads: int, reps: int) -> dict[str, float]:
    out = subprocess.run(
        [
            str(binary),
            "-m",
            str(model),
            "-t",
            str(threads),
            "-r",
            str(reps),
            "-fa",
            "1",
            "-p",
            "512",
            "-n",
            "128",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    results = json.loads(out.stdout)
    return {("pp" if r["n_prompt"] else "tg"): float(r["avg_ts"]) for r in results}


def run_llmcli(model: Path, threads: int, reps: int) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmcli",
            "bench",
            "-m",
            str(model),
            "--threads",
            str(threads),
            "-r",
            str(reps),
            "-p",
            "512",
            "-n",
            "128",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return {r["test"][:2]: float(r["mean_tps"]) for r in json.loads(out.stdout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--llama-bench", type=Path, default=None)
    args = parser.parse_args()
    from llmcli.config import usable_cores

    threads = args.threads or usable_cores()
    binary = args.llama_bench or build_llama_bench()
    model = model_path()
    ours: dict[str, list[float]] = {"pp": [], "tg": []}
    theirs: dict[str, list[float]] = {"pp": [], "tg": []}
    for _ in range(args.rounds):  # alternate, so machine noise hits both alike
        for key, value in run_llmcli(model, threads, args.reps).items():
            ours[key].append(value)
        for key, value in run_llama_bench(binary, model, threads, args.reps).items():
            theirs[key].append(value)
    print(f"model {model.name}, {threads} threads, flash attention on, {args.rounds} rounds")
    for key, name in (("pp", "pp512"), ("tg", "tg128")):
        a, b = statistics.median(ours[key]), statistics.median(theirs[key])
        print(
            f"  {name}: llmcli {a:8.1f} tok/s, llama-bench {b:8.1f} tok/s, "
            f"ratio {a / b:.3f} (bar: >= 0.95)"
        )


if __name__ == "__main__":
    main()
