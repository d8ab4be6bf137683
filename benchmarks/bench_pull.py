"""Pull throughput: `llmcli pull` (download + SHA-256 verification) against `hf download`
(huggingface_hub's own CLI, size check only), same file, same local server.

Each run gets a fresh, empty cache; the two tools alternate so that drift in machine
load hits both alike. The bar: llmcli within 10% of hf (ratio <= 1.10).

    python benchmarks/bench_pull.py [--reps 7] [--link-mb-s 100]

Unthrottled, the transfer over loopback is CPU-bound, so on a machine with few cores
the SHA-256 (about 0.1 s per 100 MB, done while the file arrives) competes with the
download itself for CPU. `--link-mb-s` models a real network link, where it does not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from hubserver import serve, standard_repos  # noqa: E402
from testmodel import model_path  # noqa: E402

REPO = "test/SmolLM2-GGUF"
FILE = "SmolLM2-135M-Instruct-Q4_K_M.gguf"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument(
        "--link-mb-s",
        type=float,
        default=None,
        help="serve at about this many MB/s, like a real network link (default: as fast "
        "as loopback goes, which makes the run CPU-bound)",
    )
    args = parser.parse_args()

    data = model_path().read_bytes()
    hf = shutil.which("hf", path=str(Path(sys.executable).parent)) or "hf"
    commands = {
        "llmcli": [sys.executable, "-m", "llmcli", "pull", REPO],
        "hf": [hf, "download", REPO, FILE],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    repos = standard_repos(data)
    if args.link_mb_s:
        for repo in repos:
            repo.chunk_size = 1 << 20
            repo.delay_per_chunk = repo.chunk_size / (args.link_mb_s * 1e6)
    with serve(repos) as hub, tempfile.TemporaryDirectory() as scratch:
        base = {
            **os.environ,
            "HF_ENDPOINT": hub.url,
            "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        for rep in range(args.reps):
            order = list(commands) if rep % 2 == 0 else list(reversed(commands))
            for name in order:
                run_dir = Path(scratch, f"{name}-{rep}")
                env = {
                    **base,
                    "HF_HOME": str(run_dir / "hf"),
                    "HF_HUB_CACHE": str(run_dir / "hf" / "hub"),
                    "LLMCLI_HOME": str(run_dir / "llmcli"),
                }
                times[name].append(timed(commands[name], env))
                shutil.rmtree(run_dir)

    size_mb = len(data) / 1e6
    link = f"link ~{args.link_mb_s:g} MB/s" if args.link_mb_s else "unthrottled loopback"
    print(f"file: {FILE}, {size_mb:.1f} MB, {link}, {args.reps} runs each, fresh cache each")
    for name, samples in times.items():
        best, median = min(samples), statistics.median(samples)
        print(
            f"{name:>7}: median {median:.3f} s ({size_mb / median:.0f} MB/s), "
            f"best {best:.3f} s  [{', '.join(f'{t:.3f}' for t in samples)}]"
        )
    ratio = statistics.median(times["llmcli"]) / statistics.median(times["hf"])
    verdict = "OK" if ratio <= 1.10 else "SLOWER THAN THE 10% BAR"
    print(f"ratio llmcli/hf (median wall time, incl. verification): {ratio:.3f}  {verdict}")


if __name__ == "__main__":
    main()
