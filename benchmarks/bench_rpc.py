"""Prompt processing (pp) and generation (tg) of a model split over RPC workers, against
the same model run locally: `llmcli bench` locally, then with `--rpc` over 1 and 2
`llmcli worker`s on this machine (127.0.0.1), all as subprocesses.

On one machine this measures the cost of the RPC path itself (every layer's activations
cross a TCP socket), not a gain: the point of workers is memory on other machines.

Usage: python benchmarks/bench_rpc.py [--model PATH] [--reps 3] [-p 128] [-n 64]
       [--threads N]   (threads of each worker and of the local run)
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testmodel import model_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_worker(threads: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmcli", "worker", "--port", str(port), "--threads", str(threads)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"worker on port {port} did not start")


def bench(model: Path, args: argparse.Namespace, rpc: list[str]) -> dict[str, float]:
    command = [
        sys.executable, "-m", "llmcli", "bench", "-m", str(model), "--json",
        "-p", str(args.n_prompt), "-n", str(args.n_gen), "-r", str(args.reps),
        "--threads", str(args.threads),
    ]  # fmt: skip
    if rpc:
        command += ["--rpc", ",".join(rpc)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return {row["test"]: row["mean_tps"] for row in json.loads(out.stdout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("-p", "--n-prompt", type=int, default=128)
    parser.add_argument("-n", "--n-gen", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    model = args.model or model_path()
    rows = [("local", bench(model, args, []))]
    for count in (1, 2):
        started = [start_worker(args.threads) for _ in range(count)]
        try:
            rows.append((f"{count} worker(s)", bench(model, args, [e for _, e in started])))
        finally:
            for proc, _ in started:
                proc.terminate()
                proc.wait(timeout=30)
    base = rows[0][1]
    print(f"model: {model.name}, threads {args.threads}, {args.reps} reps")
    print("| run         | pp t/s  | tg t/s  | pp vs local | tg vs local |")
    print("|:------------|--------:|--------:|------------:|------------:|")
    for name, speeds in rows:
        pp, tg = speeds.get(f"pp{args.n_prompt}", 0.0), speeds.get(f"tg{args.n_gen}", 0.0)
        pp_ratio = pp / base[f"pp{args.n_prompt}"] if base.get(f"pp{args.n_prompt}") else 0.0
        tg_ratio = tg / base[f"tg{args.n_gen}"] if base.get(f"tg{args.n_gen}") else 0.0
        print(f"| {name:<11} | {pp:7.1f} | {tg:7.1f} | {pp_ratio:10.2f}x | {tg_ratio:10.2f}x |")


if __name__ == "__main__":
    main()
