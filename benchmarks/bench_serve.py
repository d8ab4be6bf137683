"""`llmcli serve` under load, side by side in one run, same model and threads:

1. 8 clients at once, each streaming a 128-token answer (`/v1/chat/completions`): total
   generated tokens/s of `serve --parallel 8` over `serve --parallel 1` (bar: 1.6 or more)
   and over llama-cpp-python's own server, `python -m llama_cpp.server` (bar: 2.0 or more;
   needs `pip install 'llama-cpp-python[server]'`, skipped with a note otherwise); time to
   first token p50 and p95 for each.
2. 100 prompts: `run --batch --parallel 8` over `run --batch`, wall time.
3. How often a greedy answer differs when other sequences share its batches.

Everything listens on 127.0.0.1 and stops by itself.
Usage: python benchmarks/bench_serve.py [--threads N] [--rounds 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testmodel import model_path

CLIENTS = 8
TOKENS = 128
PROMPTS = [
    f"Write a long story about a {w}."
    for w in (
        "dragon",
        "lighthouse",
        "robot",
        "garden",
        "river",
        "violin",
        "mountain",
        "city",
    )
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                time.sleep(0.5)
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[:4]} exited with {proc.returncode}") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{cmd[:4]} did not start")


def one_client(port: int, prompt: str, out: list[tuple[float, int, float]]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    body = {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": TOKENS,
        "temperature": 0,
        "stream": True,
    }
    start = time.perf_counter()
    conn.request(
        "POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"}
    )
    response = conn.getresponse()
    first = 0.0
    pieces = 0
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk["choices"] and chunk["choices"][0].get("delta", {}).get("content"):
            pieces += 1
            if not first:
                first = time.perf_counter() - start
    conn.close()
    out.append((first, pieces, time.perf_counter() - start))


def load(port: int, count_tokens: bool = True) -> tuple[float, list[float]]:
    """Total tokens per second over all clients, and each client's time to first token.
    Stream chunks are counted as tokens: both servers send one token per chunk here."""
    results: list[tuple[float, int, float]] = []
    threads = [
        threading.Thread(target=one_client, args=(port, PROMPTS[i % len(PROMPTS)], results))
        for i in range(CLIENTS)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return sum(r[1] for r in results) / wall, [r[0] for r in results]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_server(name: str, cmd: list[str], port: int, rounds: int) -> tuple[float, list[float]]:
    proc = start(cmd, port)
    try:
        load(port)  # warm-up
        speeds, ttfts = [], []
        for _ in range(rounds):
            tps, firsts = load(port)
            speeds.append(tps)
            ttfts += firsts
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    tps = statistics.median(speeds)
    print(
        f"  {name:<28} {tps:7.1f} tok/s   TTFT p50 {pct(ttfts, 0.5):.2f} s, "
        f"p95 {pct(ttfts, 0.95):.2f} s"
    )
    return tps, ttfts


def batch_files(tmp: Path) -> Path:
    topics = [
        "a cat",
        "the sea",
        "winter",
        "a train",
        "coffee",
        "a city",
        "music",
        "rain",
        "a forest",
        "the moon",
    ]
    lines = [f"Write one sentence about {t} number {i}." for i in range(10) for t in topics]
    path = tmp / "prompts.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    model = model_path()
    t = str(args.threads)
    llmcli = [sys.executable, "-m", "llmcli"]
    print(f"model {model.name}, {args.threads} threads, {CLIENTS} clients x {TOKENS} tokens")

    results = {}
    for par in (8, 1):
        port = free_port()
        cmd = [
            *llmcli,
            "serve",
            "-m",
            str(model),
            "--port",
            str(port),
            "--threads",
            t,
            "--parallel",
            str(par),
            "--ctx",
            "1024",
            "--queue",
            "16",
        ]
        results[par], _ = bench_server(f"llmcli serve --parallel {par}", cmd, port, args.rounds)
    try:
        import llama_cpp.server  # noqa: F401

        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_threads",
            t,
            "--n_threads_batch",
            t,
            "--n_ctx",
            "2048",
            "--flash_attn",
            "true",
            # By default a new request cuts the one streaming (its client gets an empty
            # answer): queue them instead, so every client gets its whole answer.
            "--interrupt_requests",
            "false",
        ]
        theirs, _ = bench_server("llama_cpp.server", cmd, port, args.rounds)
    except ImportError:
        theirs = 0.0
        print("  llama_cpp.server: not installed (pip install 'llama-cpp-python[server]')")
    print(f"  parallel 8 over parallel 1: {results[8] / results[1]:.2f} (bar: >= 1.6)")
    if theirs:
        print(f"  parallel 8 over llama_cpp.server: {results[8] / theirs:.2f} (bar: >= 2.0)")

    with tempfile.TemporaryDirectory() as tmp:
        prompts = batch_files(Path(tmp))
        base = [
            *llmcli,
            "run",
            "-m",
            str(model),
            "--batch",
            str(prompts),
            "--temperature",
            "0",
            "-n",
            "24",
            "--threads",
            t,
        ]
        walls: dict[str, list[float]] = {"1": [], "8": []}
        outputs: dict[str, str] = {}
        for _ in range(args.rounds):
            for par in ("1", "8"):
                start = time.perf_counter()
                out = subprocess.run(
                    [*base, "--parallel", par],
                    capture_output=True,
                    text=True,
                    check=True,
                    env={**os.environ},
                )
                walls[par].append(time.perf_counter() - start)
                outputs[par] = out.stdout
        a = [json.loads(x)["text"] for x in outputs["1"].splitlines()]
        b = [json.loads(x)["text"] for x in outputs["8"].splitlines()]
        same = sum(x == y for x, y in zip(a, b, strict=True))
        w1, w8 = statistics.median(walls["1"]), statistics.median(walls["8"])
        print(
            f"  run --batch, 100 prompts: --parallel 8 {w8:.1f} s, one at a time {w1:.1f} s, "
            f"ratio {w1 / w8:.2f}x faster"
        )
        print(f"  greedy answers identical with other sequences in the batch: {same}/{len(a)}")


if __name__ == "__main__":
    main()
