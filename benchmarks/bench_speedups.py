"""Prompt cache and prompt-lookup decoding, each measured against plain decoding in one run.

1. Prompt cache: time to first token of a run sharing a ~2k-token preamble with an
   earlier run (which saved it), over the earlier run's; `llmcli run` as a subprocess,
   fresh cache folder per repetition. Also checks both answers equal plain runs.
2. Lookup: generation tokens/s with prompt-lookup decoding over without, per task of
   benchmarks/lookup_tasks.py and over groups of them: extraction tasks whose answer
   (as the model really wrote it) quotes its input, all extraction tasks, free writing.
   Same loaded model, runs alternating; also says whether the two answers are the same.

Usage: python benchmarks/bench_speedups.py [--reps 3] [--threads N] [--only cache|lookup]
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

from lookup_tasks import EXTRACTION, FREE, copied_share, greedy, orders
from testmodel import model_path


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


def bench_lookup(model: Path, reps: int, n_threads: int | None) -> None:
    from llmcli.config import usable_cores
    from llmcli.engine.model import Model

    def threads_used() -> int:
        return n_threads or usable_cores()

    from llmcli.engine.types import GenerationResult, LoadOptions, Message

    # Per task and side: generated tokens and generation seconds of each repetition.
    done: dict[str, dict[bool, list[tuple[int, float]]]] = {}
    quoting: list[str] = []
    with Model(LoadOptions(path=model, n_ctx=4096, n_threads=n_threads)) as llm:
        print(f"lookup, {threads_used()} threads, 256 tokens at temperature 0:")
        print(f"  {'task':24} quoted   plain  lookup  ratio  kept/drafted  same")
        for name, text in {**EXTRACTION, **FREE}.items():
            tokens = llm.chat_tokens([Message(role="user", content=text)])
            done[name] = {False: [], True: []}
            outputs: dict[bool, GenerationResult] = {}
            for _ in range(reps):
                for lookup in (False, True):
                    result = greedy(llm, tokens, 256, lookup=lookup)
                    n = result.completion_tokens - 1
                    done[name][lookup].append((n, n / result.generation_tps))
                    outputs[lookup] = result
            plain, fast = outputs[False], outputs[True]
            share = copied_share(tokens, llm.tokenize(plain.text, add_bos=False))
            if name in EXTRACTION and share >= 0.5:
                quoting.append(name)
            ratios = _ratios(done, [name], reps)
            print(
                f"  {name:24} {share:6.0%} {_tps(done, [name], False):7.1f} "
                f"{_tps(done, [name], True):7.1f} {statistics.median(ratios):6.2f}  "
                f"{fast.accepted_tokens:4}/{fast.draft_tokens:<4}      "
                f"{'yes' if plain.text == fast.text else 'NO'}"
            )
    print("  (quoted: share of the plain answer in runs of 6+ tokens copied from the prompt)")
    groups = {
        f"extraction whose answer quotes its input (quoted >= 50%: {len(quoting)} tasks)": (
            quoting,
            "bar: >= 1.5",
        ),
        f"all {len(EXTRACTION)} extraction tasks": (list(EXTRACTION), ""),
        f"free writing ({len(FREE)} tasks)": (list(FREE), "bar: >= 0.95"),
    }
    for label, (names, bar) in groups.items():
        if not names:
            continue
        ratios = _ratios(done, names, reps)
        print(
            f"  {label}: lookup/plain tokens per second {statistics.median(ratios):.3f} "
            f"(per rep: {', '.join(f'{r:.2f}' for r in ratios)}) {bar}"
        )


Done = dict[str, dict[bool, list[tuple[int, float]]]]


def _tps(done: Done, names: list[str], side: bool) -> float:
    tokens = sum(n for name in names for n, _ in done[name][side])
    return tokens / sum(s for name in names for _, s in done[name][side])


def _ratios(done: Done, names: list[str], reps: int) -> list[float]:
    """Per repetition: tokens per second over the tasks together, lookup over plain."""
    out = []
    for rep in range(reps):
        speed = {}
        for side in (False, True):
            tokens = sum(done[name][side][rep][0] for name in names)
            speed[side] = tokens / sum(done[name][side][rep][1] for name in names)
        out.append(speed[True] / speed[False])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only", choices=["cache", "lookup"], default=None)
    args = parser.parse_args()
    model = model_path()
    threads = ["--threads", str(args.threads)] if args.threads else []
    if args.only != "lookup":
        bench_prompt_cache(model, args.reps, threads)
    if args.only != "cache":
        bench_lookup(model, args.reps, args.threads)


if __name__ == "__main__":
    main()
