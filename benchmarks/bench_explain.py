"""Cost of `llmcli explain` against `llmcli next` on the same text, and the page's size.

Both run as the user runs them: a fresh `python -m llmcli` process each, model load
included, output piped. Runs alternate (next, explain, explain --html, next, ...) so that
drift on a shared machine hits all alike; medians and the ratios to `next` are printed,
with the size of the HTML page and of the --json object.

Texts: a short sentence (the usual case) and a paragraph of about 200 tokens.

Usage: python benchmarks/bench_explain.py [--reps 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testmodel import model_path

TEXTS = {
    "short": "The capital of France is",
    "paragraph": (
        "The old lighthouse keeper climbed the stairs every night, lit the lamp, and watched "
        "the ships pass safely through the narrow strait. "
    )
    * 8
    + "When the storm came, the keeper",
}


def timed(*args: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "llmcli", *args], capture_output=True, check=True, timeout=600
    )
    return time.perf_counter() - start, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    base = ["-m", str(model_path())]
    if args.threads is not None:
        base += ["--threads", str(args.threads)]
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "story.html"
        for name, text in TEXTS.items():
            timed("next", *base, text)  # warm the file cache and Python's bytecode
            times: dict[str, list[float]] = {"next": [], "explain": [], "explain --html": []}
            json_size = 0
            for _ in range(args.reps):
                times["next"].append(timed("next", *base, text)[0])
                took, out = timed("explain", *base, "--json", text)
                times["explain"].append(took)
                json_size = len(out)
                html = timed("explain", *base, "--html", str(page), text)[0]
                times["explain --html"].append(html)
            nxt = statistics.median(times["next"])
            print(f"{name} text ({args.reps} runs each, medians):")
            for label, values in times.items():
                median = statistics.median(values)
                print(f"  {label:<16} {median:6.2f} s   {median / nxt:5.2f}x next")
            print(f"  page {page.stat().st_size / 1024:.0f} KiB, --json {json_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
