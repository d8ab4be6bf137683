"""OpenAI's request and response shapes, checked and built without any web framework.

Requests are validated field by field into plain data; anything the server cannot honour
(n > 1, tools) is refused by name rather than ignored. Errors carry OpenAI's error object
and the HTTP status a client library maps to the right exception. Over 350 lines: every
shape OpenAI defines, asked and answered, reads in this one place.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmcli.engine.logprobs import TokenLogprob
from llmcli.engine.reasoning import Thinking
from llmcli.engine.types import Message, Sampling

MAX_STOPS = 4
TOO_DEEP = "the request body is nested too deeply"
MAX_TOP_LOGPROBS = 20
# Fields OpenAI defines that this server does not implement: refused, never ignored.
UNSUPPORTED = ("functions", "function_call", "audio", "modalities")
# Understood by chat completions only (see serve/tools.py).
TOOL_FIELDS = ("tools", "tool_choice")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


def bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def _no_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON itself does not have.
    raise ValueError(f"{name} is not a JSON value")


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad(TOO_DEEP) from None
    if not isinstance(data, dict):
        raise bad("the request body must be a JSON object")
    return data


def number_field(data: dict[str, Any], key: str, lo: float, hi: float | None) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad(f"'{key}' must be a number", key)
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise bad(f"'{key}' must be {bound}, got {value}", key)
    return float(value)


def integer_field(data: dict[str, Any], key: str, lo: int, hi: int | None = None) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"'{key}' must be an integer", key)
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise bad(f"'{key}' must be {bound}, got {value}", key)
    return value


def boolean_field(data: dict[str, Any], key: str, where: str | None = None) -> bool | None:
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        name = f"{where}.{key}" if where else key
        raise bad(f"'{name}' must be true or false", where or key)
    return value


def refuse_unsupported(data: dict[str, Any], *, tools: bool = False) -> None:
    """Refuse what this server does not implement; `tools`: the endpoint takes them."""
    for key in UNSUPPORTED if tools else UNSUPPORTED + TOOL_FIELDS:
        if data.get(key) not in (None, [], False):
            raise bad(f"'{key}' is not supported by this server", key, "unsupported_parameter")
    # "user", "store", "metadata" and "service_tier" are accepted and without effect
    # here, as in OpenAI's own API for these values.
    # "yes" or 1 is a mistake, not a wish: only JSON's true and false are understood.
    for key in ("stream", "store", "parallel_tool_calls"):
        boolean_field(data, key)
    if boolean_field(data, "echo"):
        raise bad("'echo' is not supported by this server", "echo", "unsupported_parameter")
    options = data.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise bad("'stream_options' must be an object", "stream_options")
        boolean_field(options, "include_usage", "stream_options")
    n = integer_field(data, "n", 1)
    if n is not None and n > 1:
        raise bad("'n' greater than 1 is not supported: send one request per answer", "n")


def checked_text(text: str, field: str) -> str:
    # JSON may spell half of a UTF-16 pair (\ud800) alone, which no text encoding holds.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        half = exc.object[exc.start]
        raise bad(f"'{field}' holds {half!r}, half of a character", field) from None
    return text


def _stops(data: dict[str, Any]) -> tuple[str, ...]:
    value = data.get("stop")
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise bad("'stop' must be a string or a list of non-empty strings", "stop")
    if len(stops) > MAX_STOPS:
        raise bad(f"'stop' holds at most {MAX_STOPS} strings", "stop")
    return tuple(checked_text(s, "stop") for s in stops)


def sampling_from(data: dict[str, Any], defaults: Sampling, *, tools: bool = False) -> Sampling:
    """The request's sampling fields over the server's defaults; `tools`: the endpoint
    takes tools (chat completions)."""
    refuse_unsupported(data, tools=tools)
    max_tokens = integer_field(data, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = integer_field(data, "max_tokens", 1)
    for key in ("frequency_penalty", "presence_penalty"):
        if number_field(data, key, -2.0, 2.0) not in (None, 0.0):
            raise bad(f"'{key}' is not supported by this server", key, "unsupported_parameter")
    temperature = number_field(data, "temperature", 0.0, 2.0)
    top_p = number_field(data, "top_p", 0.0, 1.0)
    seed = integer_field(data, "seed", -(2**63))
    # The server's defaults stand for every option a request does not set (and for the
    # grammar, which the request's response_format decides later).
    return dataclasses.replace(
        defaults,
        temperature=defaults.temperature if temperature is None else temperature,
        top_p=defaults.top_p if top_p is None else top_p,
        seed=defaults.seed if seed is None else seed % 2**31,
        max_tokens=max_tokens if max_tokens is not None else defaults.max_tokens,
        stop=_stops(data) or defaults.stop,
        grammar=None,
    )


def response_schema(data: dict[str, Any]) -> dict[str, Any] | None:
    """None for free text; {} for any JSON object; else the JSON schema asked for."""
    fmt = data.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise bad(
            "'response_format.type' must be 'text', 'json_object' or 'json_schema'",
            "response_format",
        )
    if fmt["type"] == "text":
        return None
    if fmt["type"] == "json_object":
        return {}
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise bad("'response_format.json_schema.schema' must be an object", "response_format")
    return schema


def logprobs_from(data: dict[str, Any], *, chat: bool) -> int | None:
    """How many alternatives per token to report, or None for no logprobs."""
    if chat:
        wanted = boolean_field(data, "logprobs")
        top = integer_field(data, "top_logprobs", 0, MAX_TOP_LOGPROBS)
        if top is not None and not wanted:
            raise bad("'top_logprobs' needs 'logprobs': true", "top_logprobs")
        return (top or 0) if wanted else None
    return integer_field(data, "logprobs", 0, 5)


def messages_from(
    data: dict[str, Any],
    history: Callable[[int, dict[str, Any], Message], Message] | None = None,
    media: list[tuple[str, bytes | str]] | None = None,
    *,
    remote_media: bool = False,
) -> list[Message]:
    """The chat messages; `history` adds what a message says of tool calls (tools.py).
    With `media`, image and audio parts are taken too: each leaves a marker in the text
    and its bytes in `media` (see serve.media); with `remote_media`, an image's http(s)
    URL stands for bytes still to fetch."""
    raw = data.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad("'messages' must be a non-empty list", "messages")
    out: list[Message] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or item.get("role") not in (
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
        ):
            raise bad(
                f"messages[{i}] needs a 'role' of system, developer, user, assistant or tool",
                "messages",
            )
        content = item.get("content")
        if content is None and item["role"] == "assistant" and item.get("tool_calls"):
            content = ""  # an answer that only called tools
        if isinstance(content, list):  # content parts: only text is understood
            texts = []
            for j, part in enumerate(content):
                if media is not None and isinstance(part, dict):
                    from llmcli.serve.media import MEDIA_PARTS, PartError, media_part

                    if part.get("type") in MEDIA_PARTS:
                        try:
                            field = f"messages[{i}].content[{j}]"
                            texts.append(media_part(part, field, media, remote=remote_media))
                        except PartError as exc:
                            raise bad(str(exc), exc.field) from None
                        continue
                if not isinstance(part, dict) or part.get("type") != "text":
                    raise bad(f"messages[{i}]: only text content parts are supported", "messages")
                text = part.get("text")
                if not isinstance(text, str):
                    field = f"messages[{i}].content[{j}].text"
                    raise bad(f"'{field}' must be a string", field)
                texts.append(text)
            content = "".join(texts)
        if not isinstance(content, str):
            raise bad(f"messages[{i}].content must be a string or text parts", "messages")
        role = "system" if item["role"] == "developer" else item["role"]
        message = Message(role=role, content=checked_text(content, f"messages[{i}].content"))
        out.append(history(i, item, message) if history is not None else message)
    return out


def thinking_from(data: dict[str, Any]) -> Thinking:
    """OpenAI's `reasoning_effort` (low, medium, high; `none` turns thinking off) and
    llama.cpp's `chat_template_kwargs.enable_thinking`."""
    effort = data.get("reasoning_effort")
    if effort is not None and effort not in ("none", "minimal", "low", "medium", "high"):
        raise bad(
            "'reasoning_effort' must be none, minimal, low, medium or high", "reasoning_effort"
        )
    kwargs = data.get("chat_template_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise bad("'chat_template_kwargs' must be an object", "chat_template_kwargs")
    enabled = kwargs.get("enable_thinking")
    if enabled is not None and not isinstance(enabled, bool):
        raise bad(
            "'chat_template_kwargs.enable_thinking' must be true or false", "chat_template_kwargs"
        )
    if effort in ("none", "minimal"):
        return Thinking(enabled=False)
    return Thinking(enabled=enabled, effort=effort)


def prompt_from(data: dict[str, Any]) -> str:
    prompt = data.get("prompt")
    if prompt == []:
        raise bad("'prompt' is empty: there is nothing to continue", "prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad("'prompt' must be a string (one prompt per request)", "prompt")
    if not prompt:
        raise bad("'prompt' is empty: there is nothing to continue", "prompt")
    return checked_text(prompt, "prompt")


def asked(data: dict[str, Any]) -> tuple[str, str | None]:
    """What a checked request asked, for the answer log: the last user message (or the
    prompt) and the system message."""
    if "messages" not in data:
        return prompt_from(data), None
    messages = messages_from(data)
    users = [m["content"] for m in messages if m["role"] == "user"]
    systems = [m["content"] for m in messages if m["role"] == "system"]
    return (users[-1] if users else ""), (systems[0] if systems else None)


def embedding_inputs(data: dict[str, Any]) -> tuple[list[str], bool]:
    """The texts, and whether vectors go back as base64 (what the openai client asks)."""
    value = data.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise bad("'input' must be a string or a non-empty list of strings", "input")
    if "" in texts:
        # An empty text has no tokens, and nothing to embed.
        where = "'input'" if isinstance(value, str) else f"input[{texts.index('')}]"
        raise bad(f"{where} is empty: each input needs some text", "input")
    for i, text in enumerate(texts):
        checked_text(text, "input" if isinstance(value, str) else f"input[{i}]")
    encoding = data.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise bad("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    return texts, encoding == "base64"


def encode_vector(vector: list[float], as_base64: bool) -> list[float] | str:
    """base64 is the vector's little-endian float32 bytes, as OpenAI sends it."""
    if not as_base64:
        return vector
    import base64
    import struct

    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


# -- responses -----------------------------------------------------------------------------


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int

    def body(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        }


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def chat_logprobs(items: list[TokenLogprob]) -> dict[str, Any]:
    return {"content": [t.as_json() for t in items], "refusal": None}


def completion_logprobs(items: list[TokenLogprob], offset: int) -> dict[str, Any]:
    """The legacy completions shape; offsets count the characters each token added."""
    offsets = []
    for t in items:
        offsets.append(offset)
        offset += len(t.text)
    return {
        "tokens": [t.chosen.token for t in items],
        "token_logprobs": [t.chosen.logprob for t in items],
        "top_logprobs": [{a.token: a.logprob for a in t.top} for t in items],
        "text_offset": offsets,
    }


def finish(reason: str | None) -> str | None:
    """The scheduler's reasons in OpenAI's words."""
    return {"interrupted": "length", "error": "stop"}.get(reason or "", reason)
