"""`llmcli serve` at its edge: what a real server on 127.0.0.1 accepts from callers,
browsers and slow or vanishing clients, driven over http.client and raw sockets where
headers and timing on the wire matter."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_serve import Server, chat_body, start_server, stop

KEY = "edge-key"
ALLOWED_ORIGIN = "http://allowed.example"
# Short deadlines for a request's head and body, so that slow clients are cut soon.
DEADLINES_S = 2
# How long any "it ends" check may wait: far beyond every deadline above.
ENDS_WITHIN_S = 60


@pytest.fixture(scope="module")
def edge(model_file: Path) -> Iterator[Server]:
    s = start_server(
        model_file,
        "--parallel",
        "2",
        "--ctx",
        "256",
        "--allowed-host",
        "my.box",
        "--cors-origin",
        ALLOWED_ORIGIN,
        env={"LLMCLI_SERVE_DEADLINES": f"{DEADLINES_S},{DEADLINES_S}"},
    )
    yield s
    assert stop(s) == 0


@pytest.fixture(scope="module")
def keyed(model_file: Path) -> Iterator[Server]:
    s = start_server(
        model_file, "--parallel", "1", "--cors-origin", "*", env={"LLMCLI_API_KEY": KEY}
    )
    yield s
    assert stop(s) == 0


def port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def request(
    server: Server,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request with exactly these headers (http.client adds Host unless given)."""
    connection = http.client.HTTPConnection("127.0.0.1", port(server), timeout=120)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    names = {k.lower() for k in headers or {}}
    try:
        connection.putrequest(method, path, skip_host="host" in names)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if data is not None:
            connection.putheader("Content-Length", str(len(data)))
        connection.endheaders(data)
        response = connection.getresponse()
        raw = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
        return response.status, found, json.loads(raw) if raw else None
    finally:
        connection.close()


JSON = {"Content-Type": "application/json"}


def post(server: Server, path: str, body: bytes | dict[str, Any]) -> tuple[int, Any]:
    status, _headers, reply = request(server, "POST", path, body, JSON)
    return status, reply


def refused(server: Server, path: str, body: bytes | dict[str, Any], param: str | None) -> str:
    status, reply = post(server, path, body)
    assert status == 400, (body if isinstance(body, dict) else body[:80], reply)
    assert reply["error"]["param"] == param, reply
    return str(reply["error"]["message"])


def read_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(ENDS_WITHIN_S)
    data = b""
    while part := sock.recv(65536):
        data += part
    return data


def wait_for_log(server: Server, words: str) -> str:
    deadline = time.monotonic() + ENDS_WITHIN_S
    while time.monotonic() < deadline:
        for line in list(server.log):
            if words in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line with {words!r}: {server.log[-10:]}")


# -- what a request may hold -----------------------------------------------------------


def test_empty_inputs_are_refused_naming_the_field(edge: Server) -> None:
    chat = "/v1/chat/completions"
    assert "messages" in refused(edge, chat, {"messages": []}, "messages")
    for prompt in ("", [], [""]):
        assert "prompt" in refused(edge, "/v1/completions", {"prompt": prompt}, "prompt")
    for value in ("", [""], [], ["fine", ""]):
        assert "input" in refused(edge, "/v1/embeddings", {"input": value}, "input")
    # The server is whole afterwards: an empty text never reached the engine.
    status, reply = post(edge, "/v1/embeddings", {"input": ["Hello", "world"]})
    assert status == 200 and len(reply["data"]) == 2


def test_numbers_must_be_finite(edge: Server) -> None:
    chat = "/v1/chat/completions"
    base = json.dumps(chat_body(max_tokens=1))[:-1]
    for field in ("temperature", "top_p", "presence_penalty"):
        for literal in ("NaN", "Infinity", "-Infinity"):
            body = f'{base}, "{field}": {literal}}}'.encode()
            assert "not valid JSON" in refused(edge, chat, body, None)
        # A number too large for a float reads as infinity: refused as well.
        body = f'{base}, "{field}": 1e999}}'.encode()
        assert field in refused(edge, chat, body, field)


def test_half_a_character_is_refused_naming_the_field(edge: Server) -> None:
    half = '"a\\ud800b"'  # JSON may spell one half of a UTF-16 pair alone
    cases = [
        ("/v1/completions", f'{{"prompt": {half}}}', "prompt"),
        ("/v1/completions", f'{{"prompt": "a", "stop": [{half}]}}', "stop"),
        ("/v1/embeddings", f'{{"input": ["x", {half}]}}', "input[1]"),
        (
            "/v1/chat/completions",
            f'{{"messages": [{{"role": "user", "content": {half}}}]}}',
            "messages[0].content",
        ),
    ]
    for path, body, field in cases:
        assert "half of a character" in refused(edge, path, body.encode(), field)
    # A whole pair is a character like any other.
    pair = {"prompt": "smile \U0001f600", "max_tokens": 1}
    assert post(edge, "/v1/completions", pair)[0] == 200


def test_deep_nesting_is_a_bad_request(edge: Server) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert "nested too deeply" in refused(edge, "/v1/chat/completions", deep, None)
    inside = b'{"messages": ' + deep + b"}"
    assert "nested too deeply" in refused(edge, "/v1/completions", inside, None)
    assert edge.get("/health")["status"] == "ok"


def test_a_text_part_must_hold_a_string(edge: Server) -> None:
    for text in ({"a": 1}, 42, None, ["x"]):
        part = {"type": "text", "text": text}
        body = {"messages": [{"role": "user", "content": [part]}], "max_tokens": 1}
        field = "messages[0].content[0].text"
        assert field in refused(edge, "/v1/chat/completions", body, field)
    good = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
    assert post(edge, "/v1/chat/completions", {**good, "max_tokens": 1})[0] == 200


def test_flags_must_be_json_booleans(edge: Server) -> None:
    chat = "/v1/chat/completions"
    for value in ("yes", "true", 1, "false"):
        assert "true or false" in refused(edge, chat, chat_body(stream=value), "stream")
        assert "true or false" in refused(edge, chat, chat_body(logprobs=value), "logprobs")
        body = {"prompt": "Hi", "echo": value}
        assert "true or false" in refused(edge, "/v1/completions", body, "echo")
        options = chat_body(stream=True, stream_options={"include_usage": value})
        assert "include_usage" in refused(edge, chat, options, "stream_options")


# -- prompts too long to tokenize --------------------------------------------------------


def test_text_too_long_for_the_context_is_refused_by_its_size(edge: Server) -> None:
    huge = "word " * 400_000  # 2 MB: far more bytes than 256 tokens of any piece can hold
    cases = [
        ("/v1/chat/completions", chat_body(huge), "messages"),
        ("/v1/completions", {"prompt": huge}, "prompt"),
        ("/v1/embeddings", {"input": ["short", huge]}, "input"),
    ]
    for path, body, param in cases:
        status, reply = post(edge, path, body)
        assert status == 400 and reply["error"]["code"] == "context_length_exceeded", reply
        assert reply["error"]["param"] == param
        assert "bytes" in reply["error"]["message"] and "256" in reply["error"]["message"]
    # What might fit is still tokenized and measured in tokens.
    status, reply = post(edge, "/v1/completions", {"prompt": "word " * 300})
    assert status == 400 and reply["error"]["code"] == "context_length_exceeded"
    assert "tokens" in reply["error"]["message"] and "bytes" not in reply["error"]["message"]


# -- clients that vanish or crawl --------------------------------------------------------


def raw_connection(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port(server)), timeout=ENDS_WITHIN_S)


def head(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_a_dropped_upload_is_logged_as_499_without_a_traceback(edge: Server) -> None:
    path = "/v1/embeddings"
    with raw_connection(edge) as sock:
        sock.sendall(head(path, 1000) + b'{"input": ')
    line = wait_for_log(edge, f'"POST {path}" 499')
    assert "Traceback" not in "\n".join(edge.log), line


def test_slow_heads_and_bodies_are_cut(edge: Server) -> None:
    path = "/v1/completions"
    partial_heads = [raw_connection(edge) for _ in range(4)]
    for sock in partial_heads:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    silent = raw_connection(edge)
    slow_body = raw_connection(edge)
    slow_body.sendall(head(path, 100) + b'{"prompt": ')
    try:
        for sock in partial_heads:
            answer = read_until_closed(sock)
            assert answer.startswith(b"HTTP/1.1 408 "), answer
        # A connection that never sent anything is simply closed.
        assert read_until_closed(silent) == b""
        answer = read_until_closed(slow_body)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"request_timeout" in answer
    finally:
        for sock in [*partial_heads, silent, slow_body]:
            sock.close()
    wait_for_log(edge, f'"POST {path}" 408')
    wait_for_log(edge, '"-" 408')
    assert edge.get("/health")["status"] == "ok"


# -- browsers ------------------------------------------------------------------------------


def test_the_bearer_scheme_is_case_insensitive(keyed: Server) -> None:
    for scheme in ("Bearer", "bearer", "BEARER"):
        headers = {"Authorization": f"{scheme} {KEY}"}
        assert request(keyed, "GET", "/v1/models", headers=headers)[0] == 200
    for wrong in (f"bearer {KEY}x", f"Basic {KEY}", KEY, "bearer"):
        headers = {"Authorization": wrong}
        assert request(keyed, "GET", "/v1/models", headers=headers)[0] == 401


def test_without_a_key_only_names_of_this_server_are_answered(edge: Server) -> None:
    p = port(edge)
    for host in (f"evil.example:{p}", "evil.example", f"localhost.evil.example:{p}"):
        status, _h, reply = request(edge, "GET", "/v1/models", headers={"Host": host})
        assert status == 403 and reply["error"]["code"] == "host_not_allowed", host
        assert "--allowed-host" in reply["error"]["message"]
    status, _h, _r = request(edge, "POST", "/v1/embeddings", {"input": "x"}, {"Host": "a.b"})
    assert status == 403
    names = (f"localhost:{p}", "LOCALHOST", f"127.0.0.1:{p}", f"[::1]:{p}", "my.box:1234")
    for host in (*names, "app.localhost", "my.box."):
        assert request(edge, "GET", "/v1/models", headers={"Host": host})[0] == 200, host


def test_with_a_key_any_host_is_answered(keyed: Server) -> None:
    headers = {"Host": "evil.example", "Authorization": f"Bearer {KEY}"}
    assert request(keyed, "GET", "/v1/models", headers=headers)[0] == 200
    assert request(keyed, "GET", "/v1/models", headers={"Host": "evil.example"})[0] == 401


def test_bodies_a_page_may_send_unasked_are_refused(edge: Server) -> None:
    body = {"input": "Hello"}
    for kind in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain; charset=utf-8",
    ):
        status, _h, reply = request(edge, "POST", "/v1/embeddings", body, {"Content-Type": kind})
        assert status == 415 and "application/json" in reply["error"]["message"], kind
    for fine in ({"Content-Type": "application/json; charset=utf-8"}, {}):
        assert request(edge, "POST", "/v1/embeddings", body, fine)[0] == 200


def test_only_allowed_origins_may_call_and_get_cors_answers(edge: Server) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    asks = {**preflight, "Access-Control-Request-Headers": "content-type, authorization"}
    status, headers, _r = request(
        edge, "OPTIONS", "/v1/chat/completions", headers={"Origin": ALLOWED_ORIGIN, **asks}
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in headers["access-control-allow-methods"]
    assert "authorization" in headers["access-control-allow-headers"]

    evil = {"Origin": "http://evil.example"}
    assert request(edge, "OPTIONS", "/v1/embeddings", headers={**evil, **preflight})[0] == 403
    status, headers, reply = request(edge, "POST", "/v1/embeddings", {"input": "x"}, evil)
    assert status == 403 and reply["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in headers
    status, headers, _r = request(
        edge, "GET", "/v1/models", headers={"Origin": "null", "Host": "localhost"}
    )
    assert status == 403

    status, headers, _r = request(
        edge, "POST", "/v1/embeddings", {"input": "x"}, {"Origin": ALLOWED_ORIGIN, **JSON}
    )
    assert status == 200 and headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    # A page the server itself would serve is its own origin.
    own = {"Origin": f"http://127.0.0.1:{port(edge)}"}
    assert request(edge, "GET", "/v1/models", headers=own)[0] == 200


def test_with_a_key_cors_still_applies(keyed: Server) -> None:
    origin = {"Origin": "https://any.example"}
    status, headers, _r = request(
        keyed,
        "OPTIONS",
        "/v1/models",
        headers={**origin, "Access-Control-Request-Method": "GET"},
    )
    # A preflight carries no key; the key is asked of the request that follows.
    assert status == 204 and headers["access-control-allow-origin"] == origin["Origin"]
    status, headers, _r = request(keyed, "GET", "/v1/models", headers=origin)
    assert status == 401 and headers["access-control-allow-origin"] == origin["Origin"]
    auth = {"Authorization": f"Bearer {KEY}"}
    status, headers, _r = request(keyed, "GET", "/v1/models", headers={**origin, **auth})
    assert status == 200 and headers["access-control-allow-origin"] == origin["Origin"]
