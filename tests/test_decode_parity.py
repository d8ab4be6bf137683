"""One decode core: `Model.generate` (run, chat, batch lines) and the `Scheduler` (serve,
`run --parallel`) each sample their own tokens and hand them to the same SequenceDecoder.
These tests hold the two paths to the same answer on the real model: greedy text,
log-probabilities with multi-byte tokens, stop strings across token boundaries, finish
reasons and reasoning markers; then `run --probs --json` against the server's `logprobs`.

Greedy answers are compared token by token up to the first near-tie: two contexts of
different shapes may sum logits in another order, and where the two likeliest tokens are
within TIE of each other, that can turn the choice. A difference anywhere else fails.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from clihelpers import cli_json
from test_serve import Server, chat_body, start_server, stop

from llmcli.engine.logprobs import TokenLogprob
from llmcli.engine.model import Model
from llmcli.engine.scheduler import Chunk, Job, Scheduler
from llmcli.engine.types import Decoding, FinishReason, LoadOptions, Message, Sampling

CTX = 1024
TIE = 0.05  # nats between the two likeliest tokens
LOGPROB_TOLERANCE = 1e-3
TOP = 3
# Japanese kana and emoji are several byte-level tokens per character in this vocabulary.
MULTI_BYTE = "Translate 'thank you' into Japanese, Chinese and Korean."
EMOJI = "Write three emoji that show happiness."
PROSE = "Tell me about the moon in two sentences."
THINK_GRAMMAR = r"""root ::= "<think>\n" thought "\n</think>\n\n" answer
thought ::= "zebra " [a-z ]{4,30}
answer ::= "Paris" [a-z .]{0,12}
"""


class Answer:
    """One path's answer: its parts, log-probabilities and finish reason."""

    def __init__(
        self,
        parts: Sequence[tuple[str, str]],
        logprobs: Sequence[TokenLogprob],
        finish_reason: FinishReason | None,
        reasoning_tokens: int,
    ) -> None:
        self.parts = list(parts)
        self.logprobs = list(logprobs)
        self.finish_reason = finish_reason
        self.reasoning_tokens = reasoning_tokens

    def joined(self, kind: str) -> str:
        return "".join(text for k, text in self.parts if k == kind)


def one_sequence(model: Model, prompt: list[int], sampling: Sampling, top: int | None) -> Answer:
    generation = model.generate(prompt, sampling, Decoding(lookup=False), logprobs=top)
    parts = list(generation)
    result = generation.result
    return Answer(parts, result.logprobs, result.finish_reason, result.reasoning_tokens)


def scheduled(
    scheduler: Scheduler, prompt: list[int], sampling: Sampling, top: int | None
) -> Answer:
    chunks: list[Chunk] = []
    ended = threading.Event()

    def emit(chunk: Chunk) -> None:
        chunks.append(chunk)
        if chunk.finish_reason is not None:
            ended.set()

    job = Job(list(prompt), sampling, emit, top)
    scheduler.submit(job)
    assert ended.wait(120), "the scheduler never finished the job"
    return Answer(
        [part for chunk in chunks for part in chunk.parts],
        [entry for chunk in chunks for entry in chunk.logprobs],
        chunks[-1].finish_reason,
        job.reasoning_tokens,
    )


def both(
    pair: tuple[Model, Scheduler], prompt: list[int], sampling: Sampling, top: int | None = TOP
) -> tuple[Answer, Answer]:
    model, scheduler = pair
    return one_sequence(model, prompt, sampling, top), scheduled(scheduler, prompt, sampling, top)


def margin(entry: dict[str, Any]) -> float:
    tops = [t["logprob"] for t in entry["top_logprobs"]]
    return float(tops[0] - tops[1]) if len(tops) > 1 else float("inf")


def agreeing(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> int:
    """How many leading entries (OpenAI-shaped logprobs) two greedy answers share; they
    may part only at a near-tie. Each shared entry has the same token, bytes and
    alternatives, and log-probabilities within LOGPROB_TOLERANCE."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):  # lengths: below
        if x["bytes"] != y["bytes"]:
            assert min(margin(x), margin(y)) < TIE, (i, x, y)
            return i
        assert x["token"] == y["token"], (i, x, y)
        assert x["logprob"] == pytest.approx(y["logprob"], abs=LOGPROB_TOLERANCE), (i, x, y)
        assert [t["bytes"] for t in x["top_logprobs"]] == [t["bytes"] for t in y["top_logprobs"]]
        for s, t in zip(x["top_logprobs"], y["top_logprobs"], strict=True):
            assert s["logprob"] == pytest.approx(t["logprob"], abs=LOGPROB_TOLERANCE), (i, s, t)
    assert len(a) == len(b), "the same tokens, but one answer went on"
    return len(a)


def as_json(entries: Sequence[TokenLogprob]) -> list[dict[str, Any]]:
    return [entry.as_json() for entry in entries]


@pytest.fixture(scope="module")
def pair(model_file: Path) -> Iterator[tuple[Model, Scheduler]]:
    with Model(LoadOptions(path=model_file, n_ctx=CTX)) as model:
        scheduler = Scheduler(model, parallel=2, ctx_per_sequence=CTX, max_waiting=4)
        try:
            yield model, scheduler
        finally:
            scheduler.close()


def chat(model: Model, text: str) -> list[int]:
    return model.chat_tokens([Message(role="user", content=text)])


# -- the two paths in one process --------------------------------------------------------


@pytest.mark.parametrize("question", [MULTI_BYTE, EMOJI, PROSE])
def test_greedy_answers_and_logprobs_agree(pair: tuple[Model, Scheduler], question: str) -> None:
    model, _ = pair
    one, many = both(pair, chat(model, question), Sampling(temperature=0, max_tokens=40))
    shared = agreeing(as_json(one.logprobs), as_json(many.logprobs))
    assert shared >= 20, shared
    if shared == len(one.logprobs):
        assert one.joined("answer") == many.joined("answer")
        assert one.finish_reason == many.finish_reason
        assert (one.finish_reason == "length") == (len(one.logprobs) == 40)
    # Each entry's text is what it added to the answer: the pieces make up the text.
    assert "".join(e.text for e in one.logprobs) == one.joined("answer")
    assert "".join(e.text for e in many.logprobs) == many.joined("answer")


@pytest.mark.parametrize("question", [MULTI_BYTE, EMOJI])
def test_a_character_split_over_tokens_reads_the_same_on_both_paths(
    pair: tuple[Model, Scheduler], question: str
) -> None:
    model, _ = pair
    one, many = both(pair, chat(model, question), Sampling(temperature=0, max_tokens=40))
    agreeing(as_json(one.logprobs), as_json(many.logprobs))
    for answer in (one, many):
        partial = [e for e in answer.logprobs if e.text == ""]
        # A token that only starts a character adds no text and shows its bytes, the
        # way llama-server names them.
        assert partial, [e.chosen.token for e in answer.logprobs]
        assert all(e.chosen.token.startswith("<0x") for e in partial)
        assert all(e.chosen.data and e.chosen.data[0] >= 0x80 for e in partial)
        assert "\ufffd" not in answer.joined("answer")


def test_a_stop_string_across_tokens_ends_both_answers_alike(
    pair: tuple[Model, Scheduler],
) -> None:
    model, _ = pair
    prompt = chat(model, PROSE)
    free, _ = both(pair, prompt, Sampling(temperature=0, max_tokens=40), 1)
    text = free.joined("answer")
    # A stop string of the last two characters of one token and the first two of the next.
    pieces = [entry.text for entry in free.logprobs]
    at = next(i for i in range(3, len(pieces) - 1) if min(len(pieces[i]), len(pieces[i + 1])) > 2)
    start = len("".join(pieces[: at + 1])) - 2
    stop_string = text[start : start + 4]
    assert len(stop_string.strip()) == 4, stop_string
    sampling = Sampling(temperature=0, max_tokens=40, stop=(stop_string,))
    one, many = both(pair, prompt, sampling, None)
    assert one.finish_reason == many.finish_reason == "stop"
    assert one.joined("answer") == many.joined("answer") == text[: text.index(stop_string)]


def test_the_end_of_generation_and_the_budget_finish_alike(pair: tuple[Model, Scheduler]) -> None:
    model, _ = pair
    prompt = chat(model, "Say hello.")
    one, many = both(pair, prompt, Sampling(temperature=0, max_tokens=200), None)
    assert one.finish_reason == many.finish_reason == "stop"
    assert one.joined("answer") == many.joined("answer")
    assert "<|im_end|>" not in one.joined("answer")
    one, many = both(pair, prompt, Sampling(temperature=0, max_tokens=3), None)
    assert one.finish_reason == many.finish_reason == "length"
    assert one.joined("answer") == many.joined("answer") != ""


def test_reasoning_markers_split_alike(family_model: Callable[..., Path]) -> None:
    with Model(LoadOptions(path=family_model("qwen3", weights=True), n_ctx=CTX)) as model:
        scheduler = Scheduler(model, parallel=1, ctx_per_sequence=CTX, max_waiting=1)
        try:
            prompt = chat(model, "What is the capital of France?")
            sampling = Sampling(temperature=0, max_tokens=80, grammar=THINK_GRAMMAR)
            one, many = both((model, scheduler), prompt, sampling, None)
        finally:
            scheduler.close()
    assert one.parts == many.parts
    assert one.joined("thinking").strip().startswith("zebra ")
    assert one.joined("answer").startswith("Paris")
    assert "think>" not in one.joined("answer") + one.joined("thinking")
    assert one.reasoning_tokens == many.reasoning_tokens > 0
    assert one.finish_reason == many.finish_reason


# -- run --probs --json against the server -----------------------------------------------


@pytest.fixture(scope="module")
def server(model_file: Path) -> Iterator[Server]:
    started = start_server(model_file, "--parallel", "2", "--ctx", str(CTX))
    yield started
    assert stop(started) == 0, started.log


@pytest.mark.parametrize("question", [MULTI_BYTE, PROSE])
def test_run_probs_json_and_the_servers_logprobs_agree(
    model_file: Path, server: Server, question: str
) -> None:
    steps = 32
    run = cli_json(
        "run", "-m", str(model_file), "--ctx", str(CTX), "--temperature", "0",
        "-n", str(steps), "--probs", "--top-logprobs", str(TOP), "--no-prompt-cache",
        "--json", question,
    )  # fmt: skip
    body = {
        **chat_body(question),
        "temperature": 0,
        "max_tokens": steps,
        "logprobs": True,
        "top_logprobs": TOP,
    }
    status, _, reply = server.post("/v1/chat/completions", body)
    assert status == 200, reply
    served = reply["choices"][0]
    shared = agreeing(run["logprobs"]["content"], served["logprobs"]["content"])
    assert shared >= 16, shared
    if shared == steps:
        assert run["text"] == served["message"]["content"]
        assert served["finish_reason"] == "length"
    if question == MULTI_BYTE:
        partial = [e for e in served["logprobs"]["content"] if e["token"].startswith("<0x")]
        assert partial and all(e["bytes"][0] >= 0x80 for e in partial)
