"""Prompt-lookup decoding: on by default at temperature 0, the plain answer up to
near-ties, fewer steps.

llama.cpp's CPU kernels do not compute a position alike in a batch and alone (the logits
of one position differ by up to about 1.4 on the test model, at any thread count), so
where plain decoding's two likeliest tokens lie close, lookup's batched check can pick
the other one (benchmarks/lookup_agreement.py measures how often). What is guaranteed,
and tested: the answers agree up to the first such near-tie.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clihelpers import run_cli

from llmcli.engine.lookup import (
    AMBIGUOUS,
    DRAFT_MAX,
    ESTIMATE_START,
    RESUMED,
    BatchCosts,
    DraftPlanner,
    Guess,
    NgramIndex,
    _trimmed,
)

PASSAGE = (
    "The lighthouse at Cape Verity was built in 1871 by the engineer Margaret Hale. "
    "It stands forty-two metres tall and its lamp can be seen from thirty kilometres away. "
    "In 1923 the original oil lamp was replaced with an electric one."
)
QUOTE = "Quote the first two sentences of this text.\n\n" + PASSAGE
PROMPTS = [
    QUOTE,
    "Repeat exactly: the quick brown fox jumps over the lazy dog, the quick brown fox.",
    "List the numbers from 1 to 30, separated by commas.",
    "Write a haiku about the sea.",
]


# Twice the largest difference seen between a position's logits in a batch and alone,
# with room to spare: a gap wider than this cannot flip.
NEAR_TIE_NATS = 4.0


def assert_same_up_to_a_near_tie(steps: list[tuple[bytes, float]], fast: bytes) -> None:
    """`steps`: plain decoding's tokens (bytes, gap between its two likeliest choices).
    The other answer may leave it only where that gap was small. The token before the
    first byte that differs is checked too: a differing token can begin with the plain
    one's bytes."""
    offset = 0
    for index, (piece, _) in enumerate(steps):
        if fast[offset : offset + len(piece)] != piece:
            gap = min(g for _, g in steps[max(0, index - 1) : index + 1])
            assert gap < NEAR_TIE_NATS, (index, gap, fast[offset : offset + 40])
            return
        offset += len(piece)
    assert fast == b"".join(piece for piece, _ in steps)


def plain_steps(model: Path, prompt: str, *flags: str, tokens: int) -> list[tuple[bytes, float]]:
    """Plain greedy decoding's tokens and, for each, the gap between its two likeliest
    choices (asking for log-probabilities turns lookup off)."""
    answer = generate(model, prompt, "--probs", "--top-logprobs", "2", *flags, tokens=tokens)
    content = answer["logprobs"]["content"]  # type: ignore[index]
    return [
        (bytes(t["bytes"]), t["top_logprobs"][0]["logprob"] - t["top_logprobs"][1]["logprob"])
        for t in content
    ]


def generate(model: Path, prompt: str, *flags: str, tokens: int = 100) -> dict[str, object]:
    proc = run_cli(
        "run", "-m", str(model), "--json", "--temperature", "0", "-n", str(tokens), *flags, prompt
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_lookup_is_on_by_default_and_gives_the_plain_answer(model_file: Path, prompt: str) -> None:
    plain, fast = generate(model_file, prompt, "--no-lookup"), generate(model_file, prompt)
    assert plain["lookup"] == {"drafted_tokens": 0, "accepted_tokens": 0}
    steps = plain_steps(model_file, prompt, tokens=100)
    assert b"".join(piece for piece, _ in steps) == plain["text"].encode()  # type: ignore[attr-defined]
    assert_same_up_to_a_near_tie(steps, fast["text"].encode())  # type: ignore[attr-defined]
    if prompt == QUOTE:  # the answer quotes the prompt: much of it came from drafts
        lookup = fast["lookup"]
        assert fast["text"].startswith("The lighthouse at Cape Verity was built in 1871")  # type: ignore[attr-defined]
        # How far drafts reach depends on this machine's measured batch costs: where a
        # batch of 2 costs 2 single steps, drafting starts only once a quote is sure.
        assert lookup["accepted_tokens"] >= 0.4 * fast["usage"]["completion_tokens"]  # type: ignore[index]
        # Where batches are cheap the policy drafts on a lower hit rate by design; most
        # drafted tokens must still be kept (0.78 to 0.95 seen across cost tables).
        assert lookup["accepted_tokens"] >= 0.7 * lookup["drafted_tokens"]  # type: ignore[index]


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_long_copy_gives_the_plain_answer_up_to_a_near_tie(
    model_file: Path, threads: str
) -> None:
    prompt = "Repeat this text exactly.\n\n" + " ".join([PASSAGE] * 4)
    flags = ("--threads", threads)
    fast = generate(model_file, prompt, *flags, tokens=200)
    assert fast["usage"]["prompt_tokens"] + fast["usage"]["completion_tokens"] > 400  # type: ignore[index]
    assert fast["lookup"]["accepted_tokens"] > 50  # type: ignore[index]
    steps = plain_steps(model_file, prompt, *flags, tokens=200)
    assert_same_up_to_a_near_tie(steps, fast["text"].encode())  # type: ignore[attr-defined]


def test_the_near_tie_check_catches_a_confident_token_changed() -> None:
    steps = [(b"The", 9.0), (b" cat", 6.0), (b" sat", 0.3), (b" on", 8.0), (b" the", 7.0)]
    assert_same_up_to_a_near_tie(steps, b"The cat sat on the")
    assert_same_up_to_a_near_tie(steps, b"The cat lay down")  # a near-tie went the other way
    for changed in (b"The dog sat on the", b"The cat sat on a", b"The cat sat on the mat"):
        with pytest.raises(AssertionError):
            assert_same_up_to_a_near_tie(steps, changed)


def test_lookup_fills_the_context_exactly_as_plain_decoding_does(model_file: Path) -> None:
    from llmcli.engine.model import Model
    from llmcli.engine.types import Decoding, LoadOptions, Message, Sampling

    with Model(LoadOptions(path=model_file, n_ctx=256)) as llm:
        # The reference costs, not those measured on this machine: whether drafting pays
        # depends on the load when they were measured, and this test is about what
        # drafting gives, not when it pays.
        llm.batch_costs = BatchCosts()
        prompt = llm.chat_tokens(
            [Message(role="user", content="Repeat this forever: the cat sat on the mat, " * 4)]
        )
        results = {}
        for lookup in (False, True):
            llm.llama.reset()
            logprobs = None if lookup else 2  # asking for log-probabilities turns lookup off
            generation = llm.generate(
                prompt, Sampling(temperature=0), Decoding(lookup=lookup), logprobs=logprobs
            )
            results[lookup] = generation.complete()
    plain, fast = results[False], results[True]
    assert fast.finish_reason == plain.finish_reason == "length"
    assert len(prompt) + fast.completion_tokens == 256
    steps = [(t.chosen.data, t.top[0].logprob - t.top[1].logprob) for t in plain.logprobs]
    assert_same_up_to_a_near_tie(steps, fast.text.encode())
    assert fast.accepted_tokens > 0


def test_lookup_is_not_used_when_sampling(model_file: Path) -> None:
    proc = run_cli(
        "run", "-m", str(model_file), "--json", "--temperature", "0.7", "-n", "40", PROMPTS[1]
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["lookup"]["drafted_tokens"] == 0


def test_stats_line_reports_drafts(model_file: Path) -> None:
    proc = run_cli("run", "-m", str(model_file), "--stats", "--temperature", "0", "-n", "60", QUOTE)
    assert proc.returncode == 0, proc.stderr
    assert "lookup kept" in proc.stderr
    assert "lookup kept" not in proc.stdout


def test_ngram_guess_follows_the_longest_match() -> None:
    # (2, 3) was followed by 4 and by 9: ambiguous; the longer (1, 2, 3) only by 4.
    history = [1, 2, 3, 4, 5, 7, 2, 3, 9, 8, 1, 2, 3]
    guess = NgramIndex(history).draft(3)
    assert guess.tokens == [4, 5, 7]
    assert guess.evidence[0] == 3


def test_ngram_guess_stops_where_earlier_text_disagrees() -> None:
    # After (7, 2, 3) nothing is known; (2, 3) was followed by 4 and by 9.
    history = [1, 2, 3, 4, 6, 2, 3, 9, 6, 7, 2, 3]
    assert NgramIndex(history).draft(3).tokens == []
    assert NgramIndex([7, 8, 9]).draft(3).tokens == []


def test_ngram_guess_runs_on_through_a_repeating_phrase() -> None:
    history = [5, 6, 7, 5, 6, 7, 5, 6]
    assert NgramIndex(history).draft(5).tokens == [7, 5, 6, 7, 5]


def test_index_grows_with_the_history() -> None:
    history = [1, 2, 3]
    index = NgramIndex(history)
    assert index.draft(2).tokens == []
    history += [8, 1, 2]
    assert index.draft(2).tokens == [3, 8]


def test_planner_waits_for_guesses_to_hold_then_drafts_more_as_they_do() -> None:
    guess = Guess(list(range(2 * DRAFT_MAX)), [4] * (2 * DRAFT_MAX))
    planner = DraftPlanner()
    assert planner.chance[4] == ESTIMATE_START
    assert planner.length(guess, 100) == 0  # a coin toss is not worth a batch
    lengths = []
    for _ in range(8):  # guesses checked for free hold
        planner.record(guess, 0, guess.tokens[0])
        lengths.append(planner.length(guess, 100))
    assert lengths[0] == 0 and lengths[-1] > 0
    assert lengths == sorted(lengths)
    for _ in range(3):  # drafts hold in full
        drafted = planner.length(guess, 100)
        planner.record(guess, drafted, guess.tokens[drafted])
        assert planner.length(guess, 100) >= drafted
    assert planner.length(guess, 100) >= 7
    for _ in range(6):
        assert planner.record(guess, 0, -5)  # wrong
    assert planner.length(guess, 100) == 0


def test_drafts_grow_no_faster_than_the_run_of_right_guesses() -> None:
    guess = Guess(list(range(DRAFT_MAX)), [6] * DRAFT_MAX)
    planner = DraftPlanner()
    planner.chance = dict.fromkeys(planner.chance, 0.99)
    assert planner.length(guess, 100) == 1
    planner.record(guess, 1, guess.tokens[1])  # the drafted token and the next held
    assert planner.streak == 2
    assert planner.length(guess, 100) == 2
    planner.record(guess, 0, -5)  # a miss ends the run
    assert planner.streak == 0 and planner.length(guess, 100) <= 1
    planner.record(Guess(), 0, 7)  # nothing guessed: no run either
    assert planner.streak == 0


def test_planner_drafts_less_where_many_positions_make_a_batch_dearer() -> None:
    guess = Guess(list(range(DRAFT_MAX)), [4] * DRAFT_MAX)
    planner = DraftPlanner()
    planner.chance[4] = 0.85
    planner.streak = 10
    assert planner.length(guess, 100) > planner.length(guess, 3000) == 0


def test_planner_trusts_longer_matches_at_least_as_much() -> None:
    planner = DraftPlanner()
    planner.observe(2, True)  # a short match held: longer ones count as holding too
    assert planner.chance[6] > ESTIMATE_START and planner.chance[RESUMED] == ESTIMATE_START
    planner.observe(6, False)  # a long one failed: shorter ones count as failing too
    assert planner.chance[2] < ESTIMATE_START
    assert all(planner.chance[n] <= planner.chance[n + 1] for n in range(2, 6))


def test_planner_drafts_only_as_far_as_the_evidence_is_good() -> None:
    planner = DraftPlanner()
    for _ in range(10):
        planner.observe(6, True)
    planner.streak = 20
    strong = Guess([1] * 12, [6] * 12)
    weak_tail = Guess([1] * 12, [6, 6, 6] + [RESUMED] * 9)
    planner.chance[RESUMED] = 0.1
    assert planner.length(weak_tail, 100) <= 3 < planner.length(strong, 100)


def _is_end(token: int) -> bool:
    return token == 0


def test_drafts_end_at_the_end_of_generation_and_fit_an_efficient_batch() -> None:
    assert _trimmed([5, 6, 0, 7, 8], _is_end) == [5, 6, 0]
    # A batch of 5 (4 drafted) costs more than one of 6 would per token: cut to 4.
    assert _trimmed([5, 6, 7, 8], _is_end) == [5, 6, 7]
    assert _trimmed([], _is_end) == []
    assert AMBIGUOUS < 0
