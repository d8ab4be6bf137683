"""How often prompt-lookup decoding changes a greedy answer, and where.

With two or more threads, llama.cpp evaluates a lone token's attention over 256+ cached
positions in per-thread slices and adds the slices up, while a batch of tokens adds up in
one pass; the sums differ in the last bits, so a near-tie between two tokens can go the
other way. Below that, and with one thread, the batched check is bit-for-bit the plain
computation. This script generates greedy answers for every prompt of
benchmarks/lookup_tasks.py plus a set of questions, with and without lookup, and reports
how many answers are identical and, for the others, the context position of the first
differing token. For scale it does the same for plain decoding with 1 thread against the
default thread count: the same kind of difference, with no lookup involved.

Usage: python benchmarks/lookup_agreement.py [--tokens 256]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from lookup_tasks import EXTRACTION, FREE, greedy
from testmodel import model_path

QUESTIONS = [
    "What is the capital of France?",
    "Why is the sky blue?",
    "List the planets of the solar system.",
    "How do I make a cup of tea?",
    "What is photosynthesis?",
    "Write a haiku about autumn.",
    "Translate 'good morning' into Spanish and French.",
    "What are the benefits of regular exercise?",
    "Explain what a prime number is, with examples.",
    "Write a Python function that reverses a string.",
    "Summarize the plot of Romeo and Juliet.",
    "What is the difference between weather and climate?",
    "Give three tips for writing a good email.",
    "Count from 1 to 40.",
    "Describe a cat to someone who has never seen one.",
    "What causes the seasons on Earth?",
    "Write a limerick about a programmer.",
    "How does a bicycle stay upright?",
]


def answers(
    model: Path, prompts: list[str], tokens: int, threads: int | None, lookup: bool
) -> list[tuple[int, list[int]]]:
    """Per prompt: its length in tokens, and the answer's tokens."""
    from llmcli.engine.model import Model
    from llmcli.engine.types import LoadOptions, Message

    out = []
    with Model(LoadOptions(path=model, n_ctx=4096, n_threads=threads)) as llm:
        for prompt in prompts:
            context = llm.chat_tokens([Message(role="user", content=prompt)])
            result = greedy(llm, context, tokens, lookup=lookup)
            out.append((len(context), llm.tokenize(result.text, add_bos=False)))
    return out


def compare(label: str, a: list[tuple[int, list[int]]], b: list[tuple[int, list[int]]]) -> None:
    same = 0
    where = []
    for (context, x), (_, y) in zip(a, b, strict=True):
        if x == y:
            same += 1
            continue
        first = next((i for i, (s, t) in enumerate(zip(x, y, strict=False)) if s != t), None)
        first = min(len(x), len(y)) if first is None else first
        where.append(context + first)
    print(f"{label}: {same}/{len(a)} answers identical")
    if where:
        print(f"  first difference at context position: {', '.join(map(str, sorted(where)))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    args = parser.parse_args()
    model = model_path()
    prompts = [*EXTRACTION.values(), *FREE.values(), *QUESTIONS]
    plain = answers(model, prompts, args.tokens, None, lookup=False)
    fast = answers(model, prompts, args.tokens, None, lookup=True)
    one_thread = answers(model, prompts, args.tokens, 1, lookup=False)
    one_thread_fast = answers(model, prompts, args.tokens, 1, lookup=True)
    print(f"{len(prompts)} prompts, {args.tokens} tokens each, temperature 0")
    compare("lookup vs plain, default threads", plain, fast)
    compare("lookup vs plain, 1 thread", one_thread, one_thread_fast)
    compare("plain, 1 thread vs default threads (no lookup)", plain, one_thread)


if __name__ == "__main__":
    main()
