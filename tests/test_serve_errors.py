"""`llmcli serve` answers every error with OpenAI's error object: the table in
llmcli/serve/errors.py row by row, then a real server whose embedding model fails to load
and whose engine refuses prompts."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
from test_serve import chat_body, start_server, stop
from test_serve_edge import wait_for_log

from llmcli.engine.scheduler import QueueFullError
from llmcli.engine.vectors import EmptyTextError
from llmcli.errors import (
    ContextOverflowError,
    LlmcliError,
    ModelInvalidError,
    ModelNotFoundError,
    UsageError,
)
from llmcli.serve import errors
from llmcli.serve import protocol as p

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"


def answer(exc: Exception, path: str = CHAT) -> tuple[int, dict[str, object], dict[str, str]]:
    error = errors.api_error(exc, "POST", path)
    body = error.body()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return error.status, body["error"], error.headers


# -- the table ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "param"), [(CHAT, "messages"), (COMPLETIONS, "prompt"), (EMBEDDINGS, "input")]
)
def test_a_prompt_too_long_names_the_endpoints_prompt_field(path: str, param: str) -> None:
    status, error, headers = answer(ContextOverflowError("the prompt is 300 tokens"), path)
    assert status == 400 and headers == {}
    assert error == {
        "message": "the prompt is 300 tokens",
        "type": "invalid_request_error",
        "param": param,
        "code": "context_length_exceeded",
    }


def test_usage_errors_are_bad_requests_naming_the_prompt_field() -> None:
    status, error, _ = answer(UsageError("the prompt is empty"), COMPLETIONS)
    assert status == 400
    assert error["param"] == "prompt" and error["code"] is None
    assert error["message"] == "the prompt is empty"
    status, error, _ = answer(EmptyTextError("an empty text has no embedding"), EMBEDDINGS)
    assert status == 400 and error["param"] == "input"
    # Outside the endpoints that read a prompt, no field is to blame.
    assert answer(UsageError("x"), "/v1/models")[1]["param"] is None


def test_a_full_queue_is_busy_with_retry_after_not_a_plain_503() -> None:
    assert issubclass(QueueFullError, LlmcliError)  # its row must come first
    status, error, headers = answer(QueueFullError("all 1 sequences are busy"))
    assert status == 503 and headers == {"Retry-After": "1"}
    assert error == {
        "message": "the server is busy: all 1 sequences are busy; retry shortly",
        "type": "server_error",
        "param": None,
        "code": "server_busy",
    }


def test_a_server_shutting_down_is_unavailable() -> None:
    status, error, headers = answer(LlmcliError("the server is shutting down"))
    assert status == 503 and headers == {}
    assert error["message"] == "the server is shutting down"
    assert error["type"] == "server_error" and error["param"] is None


def test_deep_nesting_is_the_requests_fault() -> None:
    status, error, _ = answer(RecursionError("maximum recursion depth exceeded"))
    assert status == 400 and error["message"] == p.TOO_DEEP
    assert error["type"] == "invalid_request_error"


def test_protocol_errors_pass_as_they_are() -> None:
    given = p.ApiError(413, "too big", code="x", headers={"A": "b"})
    assert errors.api_error(given, "POST", CHAT) is given


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("internal detail /srv/secret.py line 3"),
        KeyError("internal detail"),
        ModelInvalidError("not a GGUF model file: /srv/models/internal detail.gguf"),
        ModelNotFoundError("model file not found: /srv/models/internal detail.gguf"),
    ],
)
def test_the_servers_own_failures_are_500_and_only_the_log_says_why(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        raise exc  # a traceback, as a handler's exception has
    except Exception as raised:
        with caplog.at_level(logging.INFO, logger="llmcli.serve"):
            status, error, headers = answer(raised, EMBEDDINGS)
    assert status == 500 and headers == {}
    assert error == {
        "message": errors.INTERNAL_MESSAGE,
        "type": "server_error",
        "param": None,
        "code": None,
    }
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert f'"POST {EMBEDDINGS}"' in record.getMessage()
    assert "internal detail" in caplog.text and "Traceback" in caplog.text


def test_errors_meant_for_the_client_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="llmcli.serve"):
        for exc in (
            ContextOverflowError("x"),
            UsageError("x"),
            QueueFullError("x"),
            LlmcliError("x"),
            RecursionError("x"),
        ):
            errors.api_error(exc, "POST", CHAT)
    assert caplog.records == []


# -- a real server -----------------------------------------------------------------------


def _replace_with(path: Path, content: bytes) -> None:
    """Put new bytes at `path` without touching the file the server has mapped."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(content)
    os.replace(fresh, path)


def test_a_failed_embedding_model_load_is_an_openai_500(model_file: Path, tmp_path: Path) -> None:
    copy = tmp_path / model_file.name
    shutil.copyfile(model_file, copy)
    server = start_server(copy, "--parallel", "1", "--ctx", "256")
    try:
        # The embedding model loads on first use, from the file as it is by then.
        _replace_with(copy, b"not a model at all\n" * 64)
        status, headers, reply = server.post(EMBEDDINGS, {"input": "king"})
        assert status == 500, reply
        assert headers["content-type"] == "application/json"
        assert reply == {
            "error": {
                "message": errors.INTERNAL_MESSAGE,
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
        # The log, not the client, learns what failed. The request line is written as
        # the answer goes out, so it may reach the log just after the client has it.
        wait_for_log(server, f'"POST {EMBEDDINGS}" 500')
        log = "\n".join(server.log)
        assert "Traceback" in log and "not a GGUF" in log and str(tmp_path) in log, log

        # The failure is not remembered: with the file back, the next request loads it.
        _replace_with(copy, model_file.read_bytes())
        status, _, reply = server.post(EMBEDDINGS, {"input": ["king", "queen"]})
        assert status == 200 and len(reply["data"]) == 2, reply
        # The engine's refusals come back naming the field, from each endpoint.
        long = "word " * 300
        for path, body, param in [
            (EMBEDDINGS, {"input": ["short", long]}, "input"),
            (COMPLETIONS, {"prompt": long}, "prompt"),
            (CHAT, chat_body(long), "messages"),
        ]:
            status, _, reply = server.post(path, body)
            assert status == 400, (path, reply)
            assert reply["error"]["code"] == "context_length_exceeded", (path, reply)
            assert reply["error"]["param"] == param, (path, reply)
            assert "256" in reply["error"]["message"], (path, reply)
    finally:
        assert stop(server) == 0, server.log
