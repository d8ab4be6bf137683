"""Thinking apart from the answer: detection from templates, switches, stream splitting."""

from __future__ import annotations

import pytest

from llmcli.engine.reasoning import (
    ReasoningFormat,
    Splitter,
    Thinking,
    caveats,
    detect,
    opens_thinking,
    template_inputs,
)
from llmcli.engine.types import Message

TAGS = ReasoningFormat("tags", "enable_thinking")
HARMONY = ReasoningFormat("harmony", "reasoning_effort")


def split(fmt: ReasoningFormat, pieces: list[str], *, inside: bool = False) -> tuple[str, str]:
    splitter = Splitter(fmt, inside=inside)
    parts = [p for piece in pieces for p in splitter.feed(piece)] + splitter.flush()
    thinking = "".join(t for k, t in parts if k == "thinking")
    answer = "".join(t for k, t in parts if k == "answer")
    return thinking, answer


def one_char_at_a_time(text: str) -> list[str]:
    return list(text)


@pytest.mark.parametrize("chunking", [lambda t: [t], one_char_at_a_time])
def test_think_tags_split_at_any_chunking(chunking: object) -> None:
    text = "<think>\nLet me see: 2 + 2.\n</think>\n\nIt is 4."
    assert split(TAGS, chunking(text)) == ("Let me see: 2 + 2.\n", "It is 4.")  # type: ignore[operator]


def test_block_opened_by_the_template() -> None:
    assert split(TAGS, ["hmm, France", "...</thi", "nk>\n\nParis"], inside=True) == (
        "hmm, France...",
        "Paris",
    )


def test_answer_without_thinking_is_untouched() -> None:
    assert split(TAGS, ["Paris is ", "the capital."]) == ("", "Paris is the capital.")


def test_a_tag_later_in_the_answer_is_answer_text() -> None:
    text = "Use <think> tags like <think>this</think>."
    assert split(TAGS, [text]) == ("", text)


def test_unclosed_thinking_stays_thinking() -> None:
    assert split(TAGS, ["<think>still going</th"]) == ("still going</th", "")


@pytest.mark.parametrize("chunking", [lambda t: [t], one_char_at_a_time])
def test_harmony_channels(chunking: object) -> None:
    text = (
        "<|channel|>analysis<|message|>User wants a greeting.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Hello!"
    )
    assert split(HARMONY, chunking(text)) == ("User wants a greeting.", "Hello!")  # type: ignore[operator]


def test_harmony_without_header_is_answer() -> None:
    assert split(HARMONY, ["Hello ", "there"]) == ("", "Hello there")


def test_detect_from_templates() -> None:
    assert detect("{{ '<|start|>assistant<|channel|>final' }} {{ reasoning_effort }}") == HARMONY
    assert detect("{% if enable_thinking %}<think>{% endif %}") == TAGS
    assert detect("... '</think>' in content ...") == ReasoningFormat("tags", None)
    assert detect("x /no_think y <think>") == ReasoningFormat("tags", "no_think")
    assert detect("<|im_start|>assistant") is None
    assert detect(None, vocab_has=["<think>"]) == ReasoningFormat("tags", None)


def test_switches_reach_the_template_the_way_it_expects() -> None:
    msgs = [Message(role="user", content="hi")]
    assert template_inputs(TAGS, Thinking(), msgs)[0] == {"enable_thinking": True}
    assert template_inputs(TAGS, Thinking(False), msgs)[0] == {"enable_thinking": False}
    assert template_inputs(HARMONY, Thinking(), msgs)[0] == {}
    assert template_inputs(HARMONY, Thinking(effort="high"), msgs)[0] == {
        "reasoning_effort": "high"
    }
    assert template_inputs(HARMONY, Thinking(False), msgs)[0] == {"reasoning_effort": "low"}
    soft = ReasoningFormat("tags", "no_think")
    kwargs, out = template_inputs(soft, Thinking(False), msgs)
    assert kwargs == {} and out[0] == Message(role="system", content="/no_think")
    system = [Message(role="system", content="Be brief."), *msgs]
    assert template_inputs(soft, Thinking(True), system)[1][0]["content"] == "Be brief. /think"
    assert template_inputs(None, Thinking(True), msgs) == ({}, msgs)


def test_caveats_name_what_cannot_be_done() -> None:
    assert caveats(TAGS, Thinking(False, "high")) == [
        "this model has no thinking levels; --reasoning-effort is ignored"
    ]
    assert "low level" in caveats(HARMONY, Thinking(False))[0]
    assert "does not think" in caveats(None, Thinking(True))[0]
    assert caveats(ReasoningFormat("tags"), Thinking(False))
    assert caveats(TAGS, Thinking()) == []


def test_prompt_that_opens_the_block() -> None:
    assert opens_thinking("<｜Assistant｜><think>\n", TAGS)
    assert not opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n", TAGS)
    assert not opens_thinking("<|start|>assistant", HARMONY)
