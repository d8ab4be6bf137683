"""`POST /v1/messages`: Anthropic's Messages API, through the official `anthropic` client,
against a real server on the real model, side by side with `/v1/chat/completions`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from test_serve import QUESTION, Server, start_server, stop

from llmcli.serve import anthropic as a
from llmcli.serve import protocol as p

MAX = 24
KEY = "sk-local-test"


def client(server: Server, key: str = KEY) -> Any:
    """The official client. Typed loosely: its parameters name Anthropic's own models,
    and since 2.x it has no `temperature` (the servers below default to greedy)."""
    return anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def server(model_file: Path) -> Iterator[Server]:
    started = start_server(
        model_file, "--parallel", "2", "--ctx", "1024", "--api-key", KEY, "--temperature", "0"
    )
    yield started
    assert stop(started) == 0, started.log


def chat_answer(server: Server, messages: list[dict[str, str]], **extra: Any) -> Any:
    body = {"messages": messages, "temperature": 0, "max_tokens": MAX, **extra}
    status, _, reply = server.post("/v1/chat/completions", body, key=KEY)
    assert status == 200, reply
    return reply


def test_a_message_answers_as_chat_completions_does(server: Server) -> None:
    reply = client(server).messages.create(
        model=server.get("/health")["model"],
        max_tokens=MAX,
        system="You are a geography teacher.",
        messages=[{"role": "user", "content": QUESTION}],
    )
    chat = chat_answer(
        server,
        [{"role": "system", "content": "You are a geography teacher."}, user(QUESTION)],
    )
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.id.startswith("msg_")
    [block] = reply.content
    assert block.type == "text" and block.text == chat["choices"][0]["message"]["content"]
    assert block.text.strip()
    finish = chat["choices"][0]["finish_reason"]
    assert reply.stop_reason == {"length": "max_tokens", "stop": "end_turn"}[finish]
    assert reply.stop_sequence is None
    used = chat["usage"]
    assert reply.usage.output_tokens == used["completion_tokens"]
    cached = reply.usage.cache_read_input_tokens or 0
    assert reply.usage.input_tokens + cached == used["prompt_tokens"]


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def test_streamed_events_make_the_same_message(server: Server) -> None:
    kwargs: dict[str, Any] = {
        "model": server.get("/health")["model"],
        "max_tokens": MAX,
        "messages": [
            user("Hello."),
            {"role": "assistant", "content": [{"type": "text", "text": "Hi! How can I help?"}]},
            {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        ],
    }
    whole = client(server).messages.create(**kwargs)
    kinds = []
    with client(server).messages.stream(**kwargs) as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_message()
    assert final.content[0].type == whole.content[0].type == "text"
    assert final.content[0].text == whole.content[0].text
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens
    # Anthropic's order of events; the client adds its own `text` events.
    sent = [k for k in kinds if k != "text"]
    assert sent[:2] == ["message_start", "content_block_start"]
    assert sent[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(sent[2:-3]) == {"content_block_delta"}


def test_a_stop_sequence_ends_the_message_and_is_named(server: Server) -> None:
    model = server.get("/health")["model"]
    free = client(server).messages.create(model=model, max_tokens=MAX, messages=[user(QUESTION)])
    text = free.content[0].text
    words = text.split()
    assert len(words) > 3, text
    stop_at = words[2]
    cut = client(server).messages.create(
        model=model,
        max_tokens=MAX,
        stop_sequences=["zzz-never", stop_at],
        messages=[user(QUESTION)],
    )
    assert cut.stop_reason == "stop_sequence" and cut.stop_sequence == stop_at
    assert cut.content[0].text == text[: text.index(stop_at)]


def test_count_tokens_counts_what_the_message_reads(server: Server) -> None:
    kwargs: dict[str, Any] = {
        "model": server.get("/health")["model"],
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [user(QUESTION)],
    }
    counted = client(server).messages.count_tokens(**kwargs)
    reply = client(server).messages.create(max_tokens=2, **kwargs)
    cached = reply.usage.cache_read_input_tokens or 0
    assert counted.input_tokens == reply.usage.input_tokens + cached > 5


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"max_tokens": None}, anthropic.BadRequestError, "'max_tokens' is required"),
        ({"temperature": 1.5}, anthropic.BadRequestError, "'temperature' must be between"),
        (
            {"tools": [{"name": "f", "input_schema": {"type": "object"}}]},
            anthropic.BadRequestError,
            "'tools' is not supported",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            anthropic.BadRequestError,
            "text blocks only",
        ),
        (
            {"messages": [user("Hi"), {"role": "assistant", "content": "The answer is"}]},
            anthropic.BadRequestError,
            "the last message must be the user's",
        ),
        ({"messages": [{"role": "system", "content": "x"}]}, anthropic.BadRequestError, "role"),
        ({"model": "no-such-model"}, anthropic.NotFoundError, "'no-such-model' not found"),
    ],
)
def test_bad_requests_get_anthropics_error_shape(
    server: Server, change: dict[str, Any], error: type[anthropic.APIStatusError], words: str
) -> None:
    body: dict[str, Any] = {
        "model": server.get("/health")["model"],
        "max_tokens": MAX,
        "messages": [user(QUESTION)],
        **change,
    }
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(error) as caught:
        client(server).post("/v1/messages", body=body, cast_to=object)
    reply = caught.value.body
    assert isinstance(reply, dict) and reply["type"] == "error", reply
    assert words in reply["error"]["message"], reply
    assert reply["error"]["type"] == a.ERROR_TYPES[caught.value.status_code]


def test_the_api_key_is_read_from_x_api_key(server: Server) -> None:
    model = server.get("/health")["model"]
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client(server, key="wrong").messages.create(
            model=model, max_tokens=2, messages=[user(QUESTION)]
        )
    body: Any = caught.value.body
    assert body["error"]["type"] == "authentication_error", body
    # A wrong bearer token is refused as before, and the Messages API takes a right one.
    status, _, _ = server.post("/v1/chat/completions", {"messages": [user("Hi")]}, key="bad")
    assert status == 401
    raw = json.dumps({"model": model, "max_tokens": 2, "messages": [user("Hi")]}).encode()
    status, _, reply = server.post("/v1/messages", raw, key=KEY)
    assert status == 200 and reply["type"] == "message", reply


def test_a_reasoning_models_thinking_is_a_thinking_block(family_model: Any) -> None:
    # DeepSeek-R1's template opens <think> itself, so all the test model writes is
    # thinking: the text block stays empty.
    r1 = start_server(
        family_model("deepseek-r1-distill", weights=True), "--parallel", "1", "--temperature", "0"
    )
    try:
        kwargs: dict[str, Any] = {
            "model": r1.get("/health")["model"],
            "max_tokens": 16,
            "messages": [user(QUESTION)],
        }
        anthropic_client = client(r1)
        whole = anthropic_client.messages.create(**kwargs)
        assert [b.type for b in whole.content] == ["thinking", "text"]
        thought = whole.content[0].thinking
        assert thought.strip() and whole.content[1].text == ""
        with anthropic_client.messages.stream(**kwargs) as stream:
            final = stream.get_final_message()
        assert [b.type for b in final.content] == ["thinking", "text"]
        assert final.content[0].thinking.strip() == thought.strip()
    finally:
        assert stop(r1) == 0


# -- the protocol, without a server ------------------------------------------------------


def test_thinking_switch_and_stop_reasons() -> None:
    assert a.thinking_from({}).enabled is None
    assert a.thinking_from({"thinking": {"type": "enabled", "budget_tokens": 2048}}).enabled
    assert a.thinking_from({"thinking": {"type": "disabled"}}).enabled is False
    with pytest.raises(p.ApiError):
        a.thinking_from({"thinking": {"type": "on"}})
    assert a.stop_reason("stop", None) == "end_turn"
    assert a.stop_reason("stop", "###") == "stop_sequence"
    assert a.stop_reason("length", None) == a.stop_reason("interrupted", None) == "max_tokens"


def test_earlier_thinking_blocks_are_left_out_of_the_prompt() -> None:
    chat = a.messages_from(
        {
            "messages": [
                user("Hi"),
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": ""},
                        {"type": "text", "text": "Hello!"},
                    ],
                },
                user("Bye"),
            ]
        }
    )
    assert chat == [user("Hi"), {"role": "assistant", "content": "Hello!"}, user("Bye")]
