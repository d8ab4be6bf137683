"""A model started with a small KV cache (LoadOptions.start_ctx) moves to the full context
when a prompt and its answer need it, and answers exactly as one started at full size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmcli.engine.model import Model
from llmcli.engine.types import Decoding, GenerationResult, LoadOptions, Message, Sampling
from llmcli.errors import LlmcliError

FULL = 1024
START = 256
STORY = [Message(role="user", content="Write a long story about a lighthouse keeper.")]


@pytest.fixture(scope="module")
def full(model_file: Path) -> Iterator[Model]:
    with Model(LoadOptions(path=model_file, n_ctx=FULL)) as loaded:
        yield loaded


def grown(model_file: Path) -> Model:
    return Model(LoadOptions(path=model_file, n_ctx=FULL, start_ctx=START))


def answer(
    model: Model, tokens: list[int], sampling: Sampling, *, lookup: bool = False
) -> GenerationResult:
    return model.generate(tokens, sampling, Decoding(lookup=lookup)).complete()


def test_a_sampled_answer_goes_on_past_the_start_size_as_at_full_size(
    model_file: Path, full: Model
) -> None:
    sampling = Sampling(temperature=0.9, seed=5, max_tokens=420, repeat_penalty=1.1)
    tokens = full.chat_tokens(STORY)
    expected = answer(full, tokens, sampling)
    with grown(model_file) as model:
        assert model.llama.n_ctx() == START and model.n_ctx == FULL
        got = answer(model, tokens, sampling)
        assert model.llama.n_ctx() == FULL
    assert len(tokens) + got.completion_tokens > START  # it did cross the start size
    assert got.text == expected.text
    assert got.completion_tokens == expected.completion_tokens


def test_greedy_lookup_decoding_goes_on_past_the_start_size(model_file: Path, full: Model) -> None:
    sampling = Sampling(temperature=0.0, max_tokens=400)
    tokens = full.chat_tokens(STORY)
    expected = answer(full, tokens, sampling, lookup=False)
    with grown(model_file) as model:
        got = answer(model, tokens, sampling, lookup=True)
        assert model.llama.n_ctx() == FULL
    assert len(tokens) + got.completion_tokens > START
    assert got.text == expected.text


def test_a_prompt_longer_than_the_start_size_is_made_room_for_first(
    model_file: Path, full: Model
) -> None:
    long = [Message(role="user", content="Summarise: " + "the tide came in. " * 120)]
    tokens = full.chat_tokens(long)
    assert len(tokens) > START
    sampling = Sampling(temperature=0.0, max_tokens=12)
    expected = answer(full, tokens, sampling)
    with grown(model_file) as model:
        got = answer(model, tokens, sampling)
    assert got.text == expected.text
    assert got.prompt_tokens_evaluated == len(tokens)


def test_an_answer_without_a_limit_fills_the_whole_context(model_file: Path) -> None:
    with grown(model_file) as model:
        # A plain completion that counts on for as long as there is room.
        tokens = model.completion_tokens("Counting: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,")
        result = answer(model, tokens, Sampling(temperature=0.0, repeat_penalty=1.0))
        assert model.llama.n_ctx() == FULL
    assert result.finish_reason == "length"
    assert len(tokens) + result.completion_tokens == FULL


def test_no_memory_for_the_full_context_is_one_clear_error(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llama_cpp._internals

    def refuse(**_: object) -> None:
        raise ValueError("Failed to create llama_context")

    with grown(model_file) as model:
        tokens = model.completion_tokens("the tide came in. " * 80)
        assert len(tokens) > START
        monkeypatch.setattr(llama_cpp._internals, "LlamaContext", refuse)
        with pytest.raises(LlmcliError, match=f"could not grow the context to {FULL} tokens"):
            answer(model, tokens, Sampling(temperature=0.0, max_tokens=4))
        assert model.llama.n_ctx() == START  # the context it had is still whole


def test_a_second_turn_reuses_what_the_grown_context_holds(model_file: Path, full: Model) -> None:
    """As chat does: the next prompt repeats the conversation so far, whose positions
    the cache already holds, also after they moved to the larger context."""
    sampling = Sampling(temperature=0.0, max_tokens=300)
    with grown(model_file) as model:
        first_prompt = model.chat_tokens(STORY)
        first = answer(model, first_prompt, sampling)
        assert model.llama.n_ctx() == FULL
        turns = [
            *STORY,
            Message(role="assistant", content=first.text),
            Message(role="user", content="Give it a title."),
        ]
        second_prompt = model.chat_tokens(turns)
        second = answer(model, second_prompt, Sampling(temperature=0.0, max_tokens=20))
    assert second.prompt_tokens_evaluated < len(second_prompt) - START
    expected = answer(full, second_prompt, Sampling(temperature=0.0, max_tokens=20))
    assert second.text == expected.text


def test_next_makes_room_for_its_steps(model_file: Path) -> None:
    from llmcli.engine import distribution

    with grown(model_file) as model:
        tokens = model.completion_tokens("the tide came in. " * 45)
        assert len(tokens) < START < len(tokens) + 40
        steps = distribution.next_tokens(model, tokens, k=3, steps=40)
        assert model.llama.n_ctx() == FULL
    assert len(steps) == 40
