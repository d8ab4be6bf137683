"""Prompt-lookup decoding: draft tokens copied from earlier text, checked in one batch.

Answers that quote their input (extraction, editing, summaries with names) repeat runs of
tokens the model has already seen. When the last few tokens occurred before, the tokens
that followed them then are a cheap guess for what follows now. The guess is evaluated in
one batch together with the last real token; greedy verification keeps the longest
prefix on which the model's own choice agrees, plus the model's choice at the first
disagreement. Output is therefore what plain greedy decoding gives, token for token,
up to floating-point differences between batched and single-token evaluation.

A batch is not free: on a CPU it costs nearly as much per token as single steps do, so
a rejected draft token is time lost. `DraftPlanner` drafts only as far as pays off, given
how often the guesses have been right lately and what a batch of each size costs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from llmcli.engine.llama_state import KvState
from llmcli.engine.types import Sampling

NGRAM_MIN = 2
NGRAM_MAX = 6
RESUMED = 0  # evidence of a guess that picks up a quote after the model's own token

# Time to evaluate a batch of n tokens, in single-token steps, with few and with many
# positions already in the context (attention grows with both). This reference table was
# measured with llama.cpp on a 2-core x86 CPU (`python benchmarks/bench_batch_cost.py`);
# each machine measures its own near-context costs once (`llmcli.engine.calibrate`) and
# scales this table's far-context rise onto them. Sizes between the listed ones cost more
# than the next listed size, so only these are used.
BATCH_COST_NEAR = {1: 1.0, 2: 1.79, 3: 2.17, 4: 2.63, 6: 3.80, 8: 4.36, 12: 6.19, 16: 8.21}
BATCH_COST_FAR = {1: 1.0, 2: 1.89, 3: 2.59, 4: 3.26, 6: 4.60, 8: 5.71, 12: 8.37, 16: 10.75}
BATCH_SIZES = tuple(BATCH_COST_NEAR)
NEAR_POSITIONS = 150
FAR_POSITIONS = 2000
DRAFT_MAX = max(BATCH_SIZES) - 1


def plausible(near: dict[int, float], *, batched: bool = True) -> bool:
    """Whether a measured table can describe a machine. Evaluated in one step, a batch
    reads the weights once for all its tokens, so 8 tokens cost clearly less than 8 single
    steps on any backend; a table that says otherwise was measured while something else
    held the cores. (With one token per step, `batched` false, linear costs are right.)"""
    complete = all(size in near for size in BATCH_SIZES)
    return complete and (not batched or near[8] < 0.85 * 8)


@dataclass(frozen=True)
class BatchCosts:
    """What a batch of each size costs, in single-token steps, near the start of the
    context and far into it."""

    near: dict[int, float] = field(default_factory=lambda: dict(BATCH_COST_NEAR))
    far: dict[int, float] = field(default_factory=lambda: dict(BATCH_COST_FAR))

    @classmethod
    def measured(cls, near: dict[int, float], *, batched: bool = True) -> BatchCosts:
        """Costs measured on this machine near the start of the context; far into it they
        rise as they do in the reference table. An incomplete or implausible table gives
        the reference."""
        if not plausible(near, batched=batched):
            return cls()
        far = {s: near[s] * BATCH_COST_FAR[s] / BATCH_COST_NEAR[s] for s in BATCH_SIZES}
        return cls({s: near[s] for s in BATCH_SIZES}, far)

    def cost(self, size: int, position: int) -> float:
        far = min(1.0, max(0.0, (position - NEAR_POSITIONS) / (FAR_POSITIONS - NEAR_POSITIONS)))
        return (1 - far) * self.near[size] + far * self.far[size]


# How quickly the estimate of "a guess is right" follows recent guesses (about the last
# five count), where it starts, and the expected speed-up a draft must promise.
ESTIMATE_WEIGHT = 0.2
ESTIMATE_START = 0.5
MIN_GAIN = 1.05
AMBIGUOUS = -1  # not a token id


@dataclass
class Guess:
    """Guessed tokens, each with what it rests on: the length of the n-gram it continues,
    or RESUMED."""

    tokens: list[int] = field(default_factory=list)
    evidence: list[int] = field(default_factory=list)

    def after(self, i: int) -> Guess:
        return Guess(self.tokens[i:], self.evidence[i:])


class NgramIndex:
    """For each n-gram of the history, the token that followed it, and whether it was
    always the same one: a guess is made only where earlier text agrees with itself."""

    def __init__(self, history: list[int]) -> None:
        self.history = history
        # n-gram -> the token that followed it, or AMBIGUOUS when different ones did
        self._next: dict[tuple[int, ...], int] = {}
        self._indexed = 0  # n-grams ending before this position are indexed

    def _catch_up(self) -> None:
        # Never index the n-gram that ends at the last token: nothing follows it yet.
        end = len(self.history) - 1
        hist = self.history
        table = self._next
        for stop in range(self._indexed, end):
            follower = hist[stop + 1]
            for n in range(NGRAM_MIN, min(NGRAM_MAX, stop + 1) + 1):
                key = tuple(hist[stop + 1 - n : stop + 1])
                seen = table.get(key)
                if seen is None:
                    table[key] = follower
                elif seen != follower:
                    table[key] = AMBIGUOUS
        self._indexed = max(self._indexed, end)

    def draft(self, limit: int) -> Guess:
        """Up to `limit` tokens, each the one that always followed the longest n-gram
        matching the end of the history (and of the draft so far), with that n-gram's
        length as evidence. Stops where the longest match was followed by different
        tokens, or nothing matches."""
        self._catch_up()
        guess = Guess()
        tail = self.history[-NGRAM_MAX:]
        while len(guess.tokens) < limit:
            token, n = AMBIGUOUS, 0
            for n in range(min(NGRAM_MAX, len(tail)), NGRAM_MIN - 1, -1):
                found = self._next.get(tuple(tail[-n:]))
                if found is not None:
                    token = found
                    break
            if token == AMBIGUOUS:
                break
            guess.tokens.append(token)
            guess.evidence.append(n)
            tail = [*tail[1:], token] if len(tail) == NGRAM_MAX else [*tail, token]
        return guess


class DraftPlanner:
    """How much of a guess to send to the model: the part that maximizes the expected
    tokens per unit of time, or none when no part beats plain decoding.

    It keeps, for each kind of evidence, an estimate of how likely a guess resting on it
    is right, learned from guesses checked lately, including guesses never sent to the
    model: while not drafting, the first guessed token is compared with the token the
    model then chose, which costs nothing. Copying stretches are thus noticed a few
    tokens in, and free text, whose guesses rarely hold, is left to plain decoding.

    A draft is also never longer than the run of right guesses just before it (at least
    one token): a paraphrase copies a few words at a time and a quote goes on, so drafts
    grow only as fast as a copy proves itself, and a miss costs little.
    """

    def __init__(self, costs: BatchCosts | None = None) -> None:
        self.costs = costs or BatchCosts()
        self.chance = dict.fromkeys(range(NGRAM_MAX + 1), ESTIMATE_START)
        self.streak = 0

    def observe(self, evidence: int, right: bool) -> None:
        # A longer match is taken to be at least as reliable as a shorter one: a right
        # guess counts for all evidence as strong or stronger, a wrong one for all as
        # weak or weaker. Copying is then noticed as soon as any guess holds.
        for level in self.chance:
            if (level >= evidence) if right else (level <= evidence):
                self.chance[level] += ESTIMATE_WEIGHT * (float(right) - self.chance[level])

    def record(self, guess: Guess, accepted: int, choice: int) -> bool:
        """Learn from one step: the first `accepted` guessed tokens were drafted and
        held, and then the model chose `choice`. True when the guess for that token
        (drafted or not) was wrong."""
        for evidence in guess.evidence[:accepted]:
            self.observe(evidence, True)
        self.streak += accepted
        if accepted < len(guess.tokens):
            right = guess.tokens[accepted] == choice
            self.observe(guess.evidence[accepted], right)
            self.streak = self.streak + 1 if right else 0
            return not right
        if not guess.tokens:
            self.streak = 0
        return False

    def length(self, guess: Guess, position: int) -> int:
        """How many of the guessed tokens to draft."""
        best_size, best_gain = 1, MIN_GAIN
        expected = 1.0  # tokens a batch yields: a guess holds only if all before it did
        holds = 1.0
        longest = min(len(guess.tokens), DRAFT_MAX, max(self.streak, 1))
        for size in range(2, longest + 2):
            holds *= self.chance[guess.evidence[size - 2]]
            expected += holds
            if size not in self.costs.near:
                continue
            gain = expected / self.costs.cost(size, position)
            if gain > best_gain:
                best_size, best_gain = size, gain
        return best_size - 1


def _trimmed(draft: list[int], is_end: Callable[[int], bool]) -> list[int]:
    """The draft up to its first end-of-generation token (nothing after it is wanted),
    cut to a batch size that costs no more than a smaller one."""
    for i, token in enumerate(draft):
        if is_end(token):
            draft = draft[: i + 1]
            break
    size = max(n for n in BATCH_SIZES if n <= len(draft) + 1)
    return draft[: size - 1]


def lookup_applies(sampling: Sampling) -> bool:
    """Prompt-lookup decoding reproduces plain decoding only for plain greedy choice."""
    return sampling.temperature == 0 and sampling.grammar is None and sampling.repeat_penalty == 1.0


@dataclass
class LookupStats:
    drafted: int = 0
    accepted: int = 0


def greedy_tokens(
    kv: KvState,
    prompt: Sequence[int],
    stats: LookupStats,
    *,
    n_ctx: int,
    costs: BatchCosts,
    is_end: Callable[[int], bool],
) -> Iterator[int]:
    """Yield greedy tokens after `prompt`, drafting from n-grams of the prompt and answer.

    Each checked draft is recorded in `kv` as far as it held, so later calls (plain
    generation, a chat's next turn) reuse the prefix as usual.
    """
    if not kv.holds_exactly(prompt):  # the prompt cache evaluates it before saving
        kv.evaluate_prompt(prompt)
    first = int(kv.last_logits().argmax())
    history = [*prompt, first]
    index = NgramIndex(history)
    planner = DraftPlanner(costs)
    resume = Guess()  # after a wrong guess: the guess from the token it got wrong
    last = first
    yield first
    while True:
        n_past = kv.n_tokens
        room = n_ctx - n_past - 1
        if room < 0:
            return
        # The whole guess, though maybe none of it goes to the model: its first token
        # is checked for free when not drafting, and after a miss the rest is where a
        # quote usually goes on.
        guess = index.draft(DRAFT_MAX)
        if not guess.tokens and resume.tokens:
            # The model put in a token of its own (a comma in a quote) or, if it is
            # the one after the guessed token, left one out.
            skip = 2 if len(resume.tokens) > 1 and resume.tokens[1] == last else 0
            guess = resume.after(skip)
            guess.evidence = [RESUMED] * len(guess.tokens)
        resume = Guess()
        length = min(planner.length(guess, n_past), room)
        draft = _trimmed(guess.tokens[:length], is_end)
        kv.stage([last, *draft])
        kv.decode_staged()
        choices = kv.staged_logits().argmax(axis=1)
        accepted = 0
        while accepted < len(draft) and draft[accepted] == choices[accepted]:
            accepted += 1
        kv.accept(1 + accepted)
        stats.drafted += len(draft)
        stats.accepted += accepted
        if planner.record(guess, accepted, int(choices[accepted])):
            resume = guess.after(accepted)
        new = [*draft[:accepted], int(choices[accepted])]
        for token in new:
            history.append(token)
            yield token
        last = new[-1]
