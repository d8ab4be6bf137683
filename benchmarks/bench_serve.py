"""`llmcli serve` under load, side by side in one run, same model and threads:

1. 1, 4 and 8 clients at once, each streaming a 128-token answer (`/v1/chat/completions`):
   total generated tokens/s of `serve --parallel 8`, of `serve --parallel 1`, and of
   llama.cpp's own `llama-server -np 8` (built once from the llama.cpp sources that
   llama-cpp-python vendors, kept in ~/.cache/llmcli-bench; `--llama-server PATH` names
   another build, `--no-llama-server` skips it). All servers are started first and the
   rounds alternate between them, so a busy spell of the machine falls on each alike.
   Prints each one's tokens/s and time to first token, and llmcli's ratios.
2. 100 prompts: `run --batch --parallel 8` over `run --batch`, wall time.
3. How often a greedy answer differs when other sequences share its batches.

Everything listens on 127.0.0.1 and stops by itself.
Usage: python benchmarks/bench_serve.py [--threads N] [--rounds 2] [--llama-server PATH]
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
CLIENT_COUNTS = (1, 4, 8)
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


LLAMA_CPP_PYTHON = "0.3.36"
BENCH_CACHE = Path.home() / ".cache" / "llmcli-bench"


def llama_server_binary() -> Path:
    """llama.cpp's server, built from the sources of the llama-cpp-python release llmcli
    uses (the same engine code); built once, then reused."""
    source = BENCH_CACHE / f"llama_cpp_python-{LLAMA_CPP_PYTHON}" / "vendor" / "llama.cpp"
    binary = source / "build" / "bin" / "llama-server"
    if binary.exists():
        return binary
    BENCH_CACHE.mkdir(parents=True, exist_ok=True)
    if not source.exists():
        print("  building llama-server: fetching the llama-cpp-python sources ...", flush=True)
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
        subprocess.run(
            [*pip, f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", str(BENCH_CACHE)], check=True
        )
        archive = BENCH_CACHE / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
        subprocess.run(["tar", "xzf", str(archive), "-C", str(BENCH_CACHE)], check=True)
    print("  building llama-server (several minutes, once) ...", flush=True)
    flags = ["-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF"]
    subprocess.run(["cmake", "-S", str(source), "-B", str(source / "build"), *flags], check=True)
    jobs = str(os.cpu_count() or 1)
    subprocess.run(
        ["cmake", "--build", str(source / "build"), "--target", "llama-server", "-j", jobs],
        check=True,
    )
    return binary


def one_client(port: int, prompt: str, out: list[tuple[float, int, float]]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
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


def load(port: int, clients: int) -> tuple[float, list[float]]:
    """Total tokens per second over all clients, and each client's time to first token.
    Stream chunks are counted as tokens: both servers send one token per chunk here."""
    results: list[tuple[float, int, float]] = []
    threads = [
        threading.Thread(target=one_client, args=(port, PROMPTS[i % len(PROMPTS)], results))
        for i in range(clients)
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


def bench_servers(servers: dict[str, list[str]], rounds: int) -> dict[tuple[str, int], float]:
    """Every server started, then for each client count the rounds alternate between
    them. Median tokens/s per (server, clients)."""
    ports = {name: free_port() for name in servers}
    procs = {}
    try:
        for name, cmd in servers.items():
            procs[name] = start([*cmd, "--port", str(ports[name])], ports[name])
            load(ports[name], CLIENTS)  # warm-up
        out = {}
        for clients in CLIENT_COUNTS:
            speeds: dict[str, list[float]] = {name: [] for name in servers}
            firsts: dict[str, list[float]] = {name: [] for name in servers}
            for _ in range(rounds):
                for name in servers:
                    tps, ttft = load(ports[name], clients)
                    speeds[name].append(tps)
                    firsts[name] += ttft
            print(f"  {clients} client(s):")
            for name in servers:
                out[name, clients] = statistics.median(speeds[name])
                print(
                    f"    {name:<26} {out[name, clients]:7.1f} tok/s   TTFT p50 "
                    f"{pct(firsts[name], 0.5):.2f} s, p95 {pct(firsts[name], 0.95):.2f} s"
                )
        return out
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=60)


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
    parser.add_argument("--llama-server", help="a llama-server binary to compare with")
    parser.add_argument("--no-llama-server", action="store_true")
    args = parser.parse_args()
    model = model_path()
    t = str(args.threads)
    llmcli = [sys.executable, "-m", "llmcli"]
    print(f"model {model.name}, {args.threads} threads, {CLIENTS} clients x {TOKENS} tokens")

    servers = {
        f"llmcli serve --parallel {par}": [
            *llmcli, "serve", "-m", str(model), "--threads", t, "--parallel", str(par),
            "--ctx", "1024", "--queue", "16",
        ]
        for par in (8, 1)
    }  # fmt: skip
    if not args.no_llama_server:
        binary = Path(args.llama_server) if args.llama_server else llama_server_binary()
        servers["llama-server -np 8"] = [
            str(binary), "-m", str(model), "--host", "127.0.0.1", "-t", t, "-tb", t,
            "-np", "8", "-c", str(1024 * 8), "-fa", "on", "--no-webui",
        ]  # fmt: skip
    speeds = bench_servers(servers, args.rounds)
    ours, alone = "llmcli serve --parallel 8", "llmcli serve --parallel 1"
    for clients in CLIENT_COUNTS:
        line = f"  {clients} client(s): parallel 8 over parallel 1 "
        line += f"{speeds[ours, clients] / speeds[alone, clients]:.2f}"
        if ("llama-server -np 8", clients) in speeds:
            theirs = speeds["llama-server -np 8", clients]
            line += f", llmcli over llama-server {speeds[ours, clients] / theirs:.2f} (bar: >= 1.0)"
        print(line)

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
