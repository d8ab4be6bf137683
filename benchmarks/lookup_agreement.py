"""How often prompt-lookup decoding changes a greedy answer, and where.

llama.cpp's CPU kernels do not compute a position alike in a batch and alone: the sums run
in another order, the last bits differ, and the engine's 8-bit rounding of activations
carries that through the layers, so the logits of one position differ by up to about 1.4
(SmolLM2-135M Q4_1, after a 500-token prefix; at 1 and 2 threads, flash attention on and
off; only a batch size of 1 makes them equal). Lookup checks its guesses in a batch, so a
near-tie between the two likeliest tokens can go the other way. This script generates
greedy answers for every prompt of benchmarks/lookup_tasks.py plus a set of questions
(50 in all), with and without lookup, and reports how many answers are identical and,
for the others, the context position of the first differing token and how far apart the
two likeliest tokens were there in plain decoding (the gap, in nats). For scale it does
the same for plain decoding with 1 thread against the default thread count.

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
    "What is the boiling point of water at sea level, in Celsius and Fahrenheit?",
    "Name five animals that live in the ocean.",
    "Explain how a rainbow forms.",
    "Write a short story about a lost key, in five sentences.",
    "What is the difference between a virus and a bacterium?",
    "Give a recipe for pancakes.",
    "What does a compiler do?",
    "List the days of the week in French.",
    "Why do leaves change colour in autumn?",
    "Write a thank-you note to a neighbour.",
    "What is gravity?",
    "Describe the water cycle.",
    "How do you tie a shoelace?",
    "What is the Pythagorean theorem?",
    "Write four lines of a poem about the moon.",
    "What is the tallest mountain in the world?",
    "Explain what an API is to a child.",
    "Give three reasons to learn a second language.",
    "What happens when you mix baking soda and vinegar?",
    "Spell the word 'necessary' letter by letter.",
]


Answer = tuple[int, bytes, list[tuple[bytes, float]]]


def answers(
    model: Path, prompts: list[str], tokens: int, threads: int | None, lookup: bool
) -> list[Answer]:
    """Per prompt: its length in tokens, the answer's bytes and, for plain decoding, each
    token's bytes with the gap between its two likeliest choices."""
    from llmcli.engine.model import Model
    from llmcli.engine.types import Decoding, LoadOptions, Message, Sampling

    out = []
    with Model(LoadOptions(path=model, n_ctx=4096, n_threads=threads)) as llm:
        for prompt in prompts:
            context = llm.chat_tokens([Message(role="user", content=prompt)])
            if lookup:
                result = greedy(llm, context, tokens, lookup=True)
                out.append((len(context), result.text.encode(), []))
                continue
            llm.llama.reset()
            sampling = Sampling(temperature=0, max_tokens=tokens)
            result = llm.generate(context, sampling, Decoding(lookup=False), logprobs=2).complete()
            steps = [(t.chosen.data, t.top[0].logprob - t.top[1].logprob) for t in result.logprobs]
            out.append((len(context), result.text.encode(), steps))
    return out


def first_difference(steps: list[tuple[bytes, float]], other: bytes) -> tuple[int, float] | None:
    """Where `other` leaves the plain answer (token index), and the smaller gap of that
    token and the one before (a differing token can begin with the plain one's bytes)."""
    offset = 0
    for index, (piece, _) in enumerate(steps):
        if other[offset : offset + len(piece)] != piece:
            return index, min(gap for _, gap in steps[max(0, index - 1) : index + 1])
        offset += len(piece)
    return None if offset == len(other) else (len(steps), float("nan"))


def compare(label: str, plain: list[Answer], other: list[Answer]) -> None:
    same = 0
    where = []
    for (context, text, steps), (_, other_text, _) in zip(plain, other, strict=True):
        if text == other_text:
            same += 1
            continue
        found = first_difference(steps, other_text)
        if found is not None:
            where.append((context + found[0], found[1]))
    print(f"{label}: {same}/{len(plain)} answers identical")
    for position, gap in sorted(where):
        print(f"  first difference at context position {position}, plain gap {gap:.2f} nats")


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
