"""Prompt cache and prompt-lookup decoding, each measured against plain decoding in one run.

1. Prompt cache: time to first token of a run sharing a ~2k-token preamble with an
   earlier run (which saved it), over the earlier run's; `llmcli run` as a subprocess,
   fresh cache folder per repetition. Also checks both answers equal plain runs.
2. Lookup: effective generation tokens/s with --lookup over without, on an extraction
   task whose answer quotes its input, and on free writing; same loaded model, runs
   alternating. Also counts how often the two outputs differ.

Usage: python benchmarks/bench_speedups.py [--reps 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testmodel import model_path

CITIES = ["Lisbon", "Oslo", "Quito", "Hanoi", "Lagos", "Perth"]
ITEMS = ["blue ceramic mug", "oak cutting board", "linen apron", "steel kettle", "wool blanket"]


def orders(n: int) -> str:
    return "\n".join(
        f"Order {1000 + i}: {1 + i % 4} x {ITEMS[i % 5]}, shipped to {CITIES[i % 6]} "
        f"on 2026-{1 + i % 12:02d}-{1 + i % 28:02d}"
        for i in range(n)
    )


def preamble() -> str:
    # About 2,000 tokens of reference material a script might send with every question.
    return "You answer questions about these orders.\n\n" + orders(80)


def run_json(model: Path, *args: str, env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmcli",
            "run",
            "-m",
            str(model),
            "--json",
            "--temperature",
            "0",
            "-n",
            "24",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def bench_prompt_cache(model: Path, reps: int, threads: list[str]) -> None:
    system = preamble()
    first_ttft, second_ttft, plain_ttft = [], [], []
    same = 0
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "LLMCLI_HOME": home}
            a = run_json(model, *threads, "-s", system, "Which orders went to Oslo?", env=env)
            b = run_json(model, *threads, "-s", system, "Which orders went to Perth?", env=env)
            plain = run_json(
                model,
                *threads,
                "--no-prompt-cache",
                "-s",
                system,
                "Which orders went to Perth?",
                env=env,
            )
        first_ttft.append(a["timings"]["time_to_first_token_s"])  # type: ignore[index]
        second_ttft.append(b["timings"]["time_to_first_token_s"])  # type: ignore[index]
        plain_ttft.append(plain["timings"]["time_to_first_token_s"])  # type: ignore[index]
        same += b["text"] == plain["text"]
    med = statistics.median
    print(
        f"prompt cache, {a['usage']['prompt_tokens']} prompt tokens, "  # type: ignore[index]
        f"{b['prompt_cache']['reused_tokens']} reused from disk:"
    )  # type: ignore[index]
    print(f"  time to first token, first run:           {med(first_ttft):.3f} s")
    print(f"  time to first token, second run (cached): {med(second_ttft):.3f} s")
    print(f"  time to first token, second, no cache:    {med(plain_ttft):.3f} s")
    print(f"  ratio second/first: {med(second_ttft) / med(first_ttft):.3f} (bar: <= 0.2)")
    print(f"  cached answer equals plain answer: {same}/{reps}")


EXTRACT = "Copy every order shipped to Lisbon, exactly as written, one per line.\n\n" + orders(30)
FREE = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def bench_lookup(model: Path, reps: int, n_threads: int | None) -> None:
    from llmcli.engine.model import Model
    from llmcli.engine.types import Decoding, GenerationResult, LoadOptions, Message, Sampling

    with Model(LoadOptions(path=model, n_ctx=4096, n_threads=n_threads)) as llm:
        for name, text in (("extraction", EXTRACT), ("free writing", FREE)):
            tokens = llm.chat_tokens([Message(role="user", content=text)])
            speeds: dict[bool, list[float]] = {False: [], True: []}
            outputs: dict[bool, str] = {}
            kept = drafted = 0
            for _ in range(reps):
                for lookup in (False, True):
                    llm.llama.reset()  # nothing reused between runs: same work each time
                    result = GenerationResult()
                    for _ in llm.stream(
                        tokens,
                        Sampling(temperature=0, max_tokens=256),
                        result,
                        Decoding(lookup=lookup),
                    ):
                        pass
                    speeds[lookup].append(result.generation_tps)
                    outputs[lookup] = result.text
                    if lookup:
                        kept, drafted = result.accepted_tokens, result.draft_tokens
            ratios = [b / a for a, b in zip(speeds[False], speeds[True], strict=True)]
            print(f"lookup, {name} ({len(tokens)} prompt tokens):")
            print(
                f"  plain {statistics.median(speeds[False]):.1f} tok/s, lookup "
                f"{statistics.median(speeds[True]):.1f} tok/s, ratio "
                f"{statistics.median(ratios):.3f} (per rep: "
                f"{', '.join(f'{r:.2f}' for r in ratios)})"
            )
            print(
                f"  drafts kept {kept} of {drafted}; same output as plain: "
                f"{outputs[False] == outputs[True]}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    model = model_path()
    threads = ["--threads", str(args.threads)] if args.threads else []
    bench_prompt_cache(model, args.reps, threads)
    bench_lookup(model, args.reps, args.threads)


if __name__ == "__main__":
    main()
