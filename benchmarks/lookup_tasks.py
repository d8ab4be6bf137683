"""Prompts for measuring prompt-lookup decoding, shared by the lookup benchmarks.

EXTRACTION holds tasks whose answer is meant to quote the input (quoting, copying,
light editing, listing rows). Whether the small test model really quotes is measured,
not assumed: `copied_share` gives the share of an answer's tokens that lie in runs of
COPY_RUN or more tokens found verbatim in the prompt. FREE holds prompts with nothing
to quote.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmcli.engine.model import Model
    from llmcli.engine.types import GenerationResult

CITIES = ["Lisbon", "Oslo", "Quito", "Hanoi", "Lagos", "Perth"]
ITEMS = ["blue ceramic mug", "oak cutting board", "linen apron", "steel kettle", "wool blanket"]

LIGHTHOUSE = (
    "The lighthouse at Cape Verity was built in 1871 by the engineer Margaret Hale. "
    "It stands forty-two metres tall and its lamp can be seen from thirty kilometres away. "
    "In 1923 the original oil lamp was replaced with an electric one, and in 1987 the "
    "station was automated, ending more than a century of resident keepers. Today the "
    "keeper's cottage is a small museum that tells the story of the shipwrecks along the "
    "coast."
)
BEES = (
    "Honeybees communicate the location of food through a movement called the waggle "
    "dance. A forager returning to the hive walks in a straight line while shaking her "
    "body, then circles back and repeats. The angle of the straight run, measured from "
    "vertical, matches the angle between the sun and the food source. The length of the "
    "run tells the other bees how far away the flowers are. Karl von Frisch decoded this "
    "language in the 1940s and shared the 1973 Nobel Prize for the work."
)
CODE = """def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2 == 1:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
"""


def orders(n: int) -> str:
    return "\n".join(
        f"Order {1000 + i}: {1 + i % 4} x {ITEMS[i % 5]}, shipped to {CITIES[i % 6]} "
        f"on 2026-{1 + i % 12:02d}-{1 + i % 28:02d}"
        for i in range(n)
    )


EXTRACTION = {
    "quote sentences": "Quote the first three sentences of this text.\n\n" + LIGHTHOUSE,
    "repeat text": "Repeat the following text exactly, word for word:\n\n" + LIGHTHOUSE,
    "fix typos": "Fix the spelling mistakes in this text and return the corrected text:\n\n"
    + LIGHTHOUSE.replace("lighthouse", "lighthuose").replace("museum", "musuem"),
    "quote about a topic": "Quote the sentences about the waggle dance from this text, "
    "word for word.\n\n" + BEES,
    "rows as CSV": "Rewrite these orders as CSV with the header id,quantity,item,city,date."
    "\n\n" + orders(8),
    "rows as JSON": "Convert these orders to a JSON list with fields id, quantity, item, "
    "city, date.\n\n" + orders(6),
    "copy matching rows": "Copy the lines that mention Lisbon.\n\n" + orders(12),
    "copy rows, long input": "Copy every order shipped to Lisbon, exactly as written, one "
    "per line.\n\n" + orders(30),
    "edit code": "Rename the variable `ordered` to `items` in this code and return the "
    "code.\n\n" + CODE,
}
FREE = {
    "story": "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "explanation": "Explain how a refrigerator works.",
    "advice": "Give me five tips for learning to play the guitar.",
}
COPY_RUN = 6


def copied_share(prompt: Sequence[int], answer: Sequence[int]) -> float:
    """Share of the answer's tokens inside runs of COPY_RUN+ tokens found in the prompt."""
    grams = {tuple(prompt[i : i + COPY_RUN]) for i in range(len(prompt) - COPY_RUN + 1)}
    covered = [False] * len(answer)
    for i in range(len(answer) - COPY_RUN + 1):
        if tuple(answer[i : i + COPY_RUN]) in grams:
            covered[i : i + COPY_RUN] = [True] * COPY_RUN
    return sum(covered) / len(answer) if answer else 0.0


def greedy(model: Model, prompt: Sequence[int], tokens: int, *, lookup: bool) -> GenerationResult:
    """One greedy answer from an empty context (nothing reused: the same work each time)."""
    from llmcli.engine.types import Decoding, Sampling

    model.llama.reset()
    sampling = Sampling(temperature=0, max_tokens=tokens)
    return model.generate(prompt, sampling, Decoding(lookup=lookup)).complete()
