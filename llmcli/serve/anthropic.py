"""Anthropic's Messages API, as data: a request checked and turned into the server's own
terms (chat messages, sampling, thinking), and the answer and errors in Anthropic's shape.

The HTTP side is messages.py; this module does no I/O, so every rule here is testable
without a server.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from llmcli.engine.reasoning import Thinking
from llmcli.engine.types import FinishReason, Message, Sampling
from llmcli.serve import protocol as p

PATHS = ("/v1/messages", "/v1/messages/count_tokens")
MAX_STOP_SEQUENCES = 16
# Fields of Anthropic's API this server does not implement: refused, never ignored.
UNSUPPORTED = ("tools", "tool_choice", "mcp_servers", "container")
# Anthropic's error types by HTTP status; what is not here is an api_error.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
}


@dataclass(frozen=True)
class MessagesRequest:
    messages: list[Message]  # the system prompt first, when there is one
    sampling: Sampling
    thinking: Thinking
    stream: bool


def error_body(error: p.ApiError) -> dict[str, Any]:
    kind = ERROR_TYPES.get(error.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def _text_blocks(value: Any, field: str, *, allow: tuple[str, ...] = ()) -> str:
    """A string, or a list of content blocks whose text is joined. Blocks of a type in
    `allow` are skipped (an earlier answer's thinking); any other kind is refused."""
    if isinstance(value, str):
        return p.checked_text(value, field)
    if not isinstance(value, list):
        raise p.bad(f"'{field}' must be a string or a list of content blocks", field)
    texts = []
    for j, block in enumerate(value):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in allow:
            continue
        if kind != "text":
            raise p.bad(
                f"'{field}[{j}]' is a {kind or 'malformed'} block: this server reads text "
                "blocks only",
                field,
            )
        text = block.get("text")
        if not isinstance(text, str):
            raise p.bad(f"'{field}[{j}].text' must be a string", field)
        texts.append(p.checked_text(text, f"{field}[{j}].text"))
    return "".join(texts)


def messages_from(data: dict[str, Any]) -> list[Message]:
    raw = data.get("messages")
    if not isinstance(raw, list) or not raw:
        raise p.bad("'messages' must be a non-empty list", "messages")
    out: list[Message] = []
    system = data.get("system")
    if system is not None:
        text = _text_blocks(system, "system")
        if text:
            out.append({"role": "system", "content": text})
    for i, item in enumerate(raw):
        role = item.get("role") if isinstance(item, dict) else None
        if role not in ("user", "assistant"):
            raise p.bad(f"messages[{i}] needs a 'role' of user or assistant", "messages")
        field = f"messages[{i}].content"
        content = _text_blocks(item.get("content"), field, allow=("thinking", "redacted_thinking"))
        out.append({"role": role, "content": content})
    if out[-1]["role"] == "assistant":
        # Anthropic continues a last assistant turn ("prefill"); a chat template closes
        # it instead, so the answer would not continue it.
        raise p.bad(
            "the last message must be the user's: continuing an assistant message is not supported",
            "messages",
        )
    return out


def _stop_sequences(data: dict[str, Any]) -> tuple[str, ...]:
    value = data.get("stop_sequences")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise p.bad("'stop_sequences' must be a list of non-empty strings", "stop_sequences")
    if len(value) > MAX_STOP_SEQUENCES:
        raise p.bad(
            f"'stop_sequences' holds at most {MAX_STOP_SEQUENCES} strings", "stop_sequences"
        )
    return tuple(p.checked_text(s, "stop_sequences") for s in value)


def thinking_from(data: dict[str, Any]) -> Thinking:
    """`thinking: {"type": "enabled", "budget_tokens": N}` turns a reasoning model's
    thinking on, `{"type": "disabled"}` off; without it the model's own default holds.
    The budget is not a separate limit here: `max_tokens` bounds thinking and answer."""
    value = data.get("thinking")
    if value is None:
        return Thinking()
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        raise p.bad("'thinking.type' must be enabled, disabled or adaptive", "thinking")
    if kind == "enabled":
        p.integer_field(value, "budget_tokens", 1)
    return Thinking(enabled={"enabled": True, "disabled": False}.get(kind))


def request_from(data: dict[str, Any], defaults: Sampling) -> MessagesRequest:
    for key in UNSUPPORTED:
        if data.get(key) not in (None, [], {}):
            raise p.bad(f"'{key}' is not supported by this server", key)
    max_tokens = p.integer_field(data, "max_tokens", 1)
    if max_tokens is None:
        raise p.bad("'max_tokens' is required", "max_tokens")
    temperature = p.number_field(data, "temperature", 0.0, 1.0)
    top_p = p.number_field(data, "top_p", 0.0, 1.0)
    top_k = p.integer_field(data, "top_k", 0)
    stream = p.boolean_field(data, "stream")
    if data.get("metadata") is not None and not isinstance(data["metadata"], dict):
        raise p.bad("'metadata' must be an object", "metadata")
    sampling = dataclasses.replace(
        defaults,
        temperature=defaults.temperature if temperature is None else temperature,
        top_p=defaults.top_p if top_p is None else top_p,
        # Anthropic's top_k 0 is no top-k cut, which llama.cpp also spells 0.
        top_k=defaults.top_k if top_k is None else top_k,
        max_tokens=max_tokens,
        stop=_stop_sequences(data),
        grammar=None,
    )
    return MessagesRequest(messages_from(data), sampling, thinking_from(data), stream is True)


def count_request_from(data: dict[str, Any]) -> tuple[list[Message], Thinking]:
    """`/v1/messages/count_tokens` takes a request without `max_tokens`."""
    for key in UNSUPPORTED:
        if data.get(key) not in (None, [], {}):
            raise p.bad(f"'{key}' is not supported by this server", key)
    return messages_from(data), thinking_from(data)


# -- answers ----------------------------------------------------------------------------


def stop_reason(reason: FinishReason | None, stop_sequence: str | None) -> str:
    if reason == "stop":
        return "stop_sequence" if stop_sequence is not None else "end_turn"
    # The token limit, a full context or a server that shuts down: the answer was cut.
    return "max_tokens"


def usage(prompt_tokens: int, cached: int, output_tokens: int) -> dict[str, int]:
    """Anthropic counts the input read from the cache apart from the rest."""
    return {
        "input_tokens": prompt_tokens - cached,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def content(text: str, thought: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if thought:
        # No signature: the thinking is the model's own, not a hosted model's to verify.
        blocks.append({"type": "thinking", "thinking": thought, "signature": ""})
    blocks.append({"type": "text", "text": text})
    return blocks


def message(ident: str, model: str, blocks: list[dict[str, Any]], **end: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": end.get("stop_reason"),
        "stop_sequence": end.get("stop_sequence"),
        "usage": end.get("usage") or usage(0, 0, 0),
    }
