"""The per-token core on its own, with a tokenizer of a few made-up tokens: UTF-8 across
tokens, stop strings, the budget, the end token, thinking markers and logprobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from llmcli.engine.reasoning import ReasoningFormat, Splitter
from llmcli.engine.sequence import SequenceDecoder
from llmcli.engine.types import GenerationResult, Sampling

END = 0
VOCAB: dict[int, bytes] = {
    END: b"</s>",
    1: b"Hello",
    2: b" world",
    3: b"\xe3\x81",  # the first two bytes of "あ"
    4: b"\x82",  # its last
    5: b"<think>",
    6: b"</think>",
    7: b" hmm",
    8: b"!",
}


class Tokens:
    """The few methods of engine.tokenizer.Tokenizer the decoder calls."""

    def __init__(self, fmt: ReasoningFormat | None = None) -> None:
        self._fmt = fmt
        self.marker_ids = {5, 6} if fmt else set()

    def is_end_of_generation(self, token: int) -> bool:
        return token == END

    def token_bytes(self, token: int, *, special: bool = False) -> bytes:
        return VOCAB[token]

    def shown_bytes(self, token: int) -> bytes:
        return VOCAB[token]

    def splitter(self, prompt: Sequence[int]) -> Splitter | None:
        return Splitter(self._fmt) if self._fmt else None


def decoder(sampling: Sampling, *, room: int = 100, **kw: Any) -> SequenceDecoder:
    return SequenceDecoder(Tokens(kw.pop("fmt", None)), [1], sampling, room=room, **kw)  # type: ignore[arg-type]


def feed_all(d: SequenceDecoder, tokens: Sequence[int]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for token in tokens:
        logits = np.zeros(len(VOCAB), dtype=np.float32) if d.wants_logits else None
        out += d.feed(token, logits)
    return out


def test_a_character_split_over_tokens_comes_out_whole() -> None:
    d = decoder(Sampling(seed=7))
    assert d.feed(1) == [("answer", "Hello")]
    assert d.feed(3) == []  # half a character is no text yet
    assert d.feed(4) == [("answer", "あ")]
    assert d.feed(END) == []
    assert (d.text, d.finish_reason, d.completion_tokens, d.seed) == ("Helloあ", "stop", 3, 7)


def test_a_stop_string_across_tokens_is_held_back_and_cut() -> None:
    d = decoder(Sampling(stop=("o wo",)))
    parts = feed_all(d, [1, 2, 8])
    assert "".join(text for _, text in parts) == d.text == "Hell"
    assert d.finish_reason == "stop" and d.done and d.stop_sequence == "o wo"
    assert d.feed(8) == []  # nothing after the end


def test_the_budget_is_the_smaller_of_max_tokens_and_the_room_left() -> None:
    assert decoder(Sampling(max_tokens=2), room=10).budget == 2
    assert decoder(Sampling(max_tokens=None), room=3).budget == 3
    d = decoder(Sampling(max_tokens=2))
    feed_all(d, [1, 2, 8])
    assert (d.text, d.finish_reason, d.completion_tokens) == ("Hello world", "length", 2)
    assert decoder(Sampling(), room=0).finish_reason == "length"


def test_the_last_tokens_unfinished_character_is_dropped_at_the_end() -> None:
    d = decoder(Sampling(max_tokens=2))
    feed_all(d, [1, 3])
    assert d.text == "Hello" and "\ufffd" not in d.text


def test_finish_counts_once() -> None:
    d = decoder(Sampling())
    feed_all(d, [1])
    d.finish("error")
    assert d.finish("stop") == [] and d.finish_reason == "error"


def test_thinking_is_split_from_the_answer_and_counted() -> None:
    d = decoder(Sampling(), fmt=ReasoningFormat("tags"))
    parts = feed_all(d, [5, 7, 6, 1, END])
    assert d.reasoning == "hmm" and d.text == "Hello"
    assert parts == [("thinking", "hmm"), ("answer", "Hello")]
    assert d.reasoning_tokens == 3 and d.completion_tokens == 4


def test_without_reasoning_the_markers_are_answer_text() -> None:
    d = decoder(Sampling(), fmt=ReasoningFormat("tags"), reasoning=False)
    feed_all(d, [5, 7, 6])
    d.finish("stop")
    assert d.text == "<think> hmm</think>" and d.reasoning_tokens == 0


def test_logprobs_name_each_token_and_the_text_it_added() -> None:
    d = decoder(Sampling(), top_logprobs=2)
    feed_all(d, [1, 3, 4])
    assert [e.chosen.data for e in d.logprobs] == [b"Hello", b"\xe3\x81", b"\x82"]
    assert [e.text for e in d.logprobs] == ["Hello", "", "あ"]
    assert all(len(e.top) == 2 for e in d.logprobs)
    with pytest.raises(ValueError):
        d.feed(1)  # logprobs need the logits


def test_fill_extends_the_results_logprobs() -> None:
    d = decoder(Sampling(max_tokens=5), top_logprobs=0)
    result = GenerationResult()
    shown = result.logprobs
    feed_all(d, [1])
    d.fill(result)
    feed_all(d, [2])
    d.fill(result)
    assert result.logprobs is shown and len(shown) == 2
    assert (result.text, result.completion_tokens) == ("Hello world", 2)
