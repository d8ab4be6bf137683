"""`llmcli serve` under clients that leave, bursts, repeated signals and answers cut
inside a character: a real server on 127.0.0.1, driven over raw sockets where the
connection itself matters."""

from __future__ import annotations

import codecs
import json
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_serve import Server, start_server, stop

from llmcli.engine.pieces import piece_text

# A prompt the test model goes on counting after for thousands of tokens.
ENDLESS = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"
# The test model answers this in Chinese, one or two tokens to a character.
CHINESE = "Translate to Chinese: good morning"


@pytest.fixture(scope="module")
def server(model_file: Path) -> Iterator[Server]:
    s = start_server(model_file, "--parallel", "2", "--threads", "1")
    yield s
    assert stop(s) == 0


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def send_raw(server: Server, path: str, body: dict[str, Any]) -> socket.socket:
    """A POST written straight to a socket, which the caller reads or drops as it likes."""
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{_port(server)}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        "Connection: close\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", _port(server)), timeout=120)
    sock.sendall(head.encode() + data)
    return sock


def read_all(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The status, headers (lower-cased names) and body of the answer on `sock`."""
    raw = b""
    with sock:
        while part := sock.recv(65536):
            raw += part
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_whole_answer_whose_client_left_frees_its_sequence(server: Server) -> None:
    body = {"prompt": ENDLESS, "max_tokens": 4000, "temperature": 0}
    sock = send_raw(server, "/v1/completions", body)
    wait_for(lambda: server.get("/health")["active"] == 1, "the request never began answering")
    # Left while its tokens come, not in the pause before the first one, when even a
    # check made only between tokens would notice.
    time.sleep(1)
    sock.close()
    # Answered to the end, the job would take a minute or more.
    wait_for(lambda: server.get("/health")["active"] == 0, "the sequence was never freed", 10)
    code, _headers, reply = server.post("/v1/completions", {"prompt": "Hi", "max_tokens": 2})
    assert code == 200 and reply["usage"]["completion_tokens"] <= 2
    assert server.proc.poll() is None
    assert not any("Traceback" in line for line in server.log)


def test_a_burst_never_exceeds_the_queue(model_file: Path) -> None:
    small = start_server(model_file, "--parallel", "2", "--queue", "1")
    seen: list[tuple[int, int]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            health = small.get("/health")
            seen.append((health["active"], health["waiting"]))

    try:
        # A long prompt holds the scheduler in long steps, one sequence still free: the
        # burst arrives before the next step could hand that sequence to any of it.
        long = {"prompt": "word " * 500, "max_tokens": 8, "temperature": 0}
        socks = [send_raw(small, "/v1/completions", long)]
        wait_for(lambda: small.get("/health")["active"] == 1, "the long prompt was not taken")
        watcher = threading.Thread(target=watch)
        watcher.start()
        body = {"prompt": ENDLESS, "max_tokens": 16, "temperature": 0}
        socks += [send_raw(small, "/v1/completions", body) for _ in range(8)]
        answers = [read_all(s) for s in socks]
        done.set()
        watcher.join()
    finally:
        assert stop(small) == 0
    codes = [code for code, _h, _b in answers]
    assert set(codes) <= {200, 503} and codes.count(200) >= 2
    assert codes.count(503) >= 1, "9 requests at once fit in 2 sequences and a queue of 1"
    for code, headers, body_bytes in answers:
        if code == 503:
            assert headers.get("retry-after") == "1"
            assert json.loads(body_bytes)["error"]["code"] == "server_busy"
    assert seen and max(a for a, _w in seen) <= 2 and max(w for _a, w in seen) <= 1


def _stream_then_signal_twice(model_file: Path, sig: signal.Signals) -> int:
    s = start_server(model_file, "--parallel", "2", "--grace", "60")
    body = {"prompt": ENDLESS, "max_tokens": 4000, "temperature": 0, "stream": True}
    request = urllib.request.Request(
        f"{s.url}/v1/completions", data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    events: list[str] = []

    def read(response: Any) -> None:
        lines = response.read().splitlines()
        events.extend(line.decode() for line in lines if line.startswith(b"data:"))

    try:
        response = urllib.request.urlopen(request, timeout=60)
        assert response.readline().startswith(b"data:")
        reader = threading.Thread(target=read, args=(response,), daemon=True)
        reader.start()
        s.proc.send_signal(sig)
        time.sleep(0.5)
        assert s.proc.poll() is None  # the first signal leaves the answer its grace
        s.proc.send_signal(sig)
        code = s.proc.wait(timeout=30)  # well before the 60 s of grace are over
        reader.join(timeout=10)
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
    assert events, "the stream was cut"
    assert events[-1] == "data: [DONE]"
    last = json.loads(events[-2][len("data: ") :])
    assert last["choices"][0]["finish_reason"] == "length"
    # The last line it writes: all before it has been read.
    wait_for(lambda: any("stopped" in line for line in s.log), "no 'stopped' notice", 10)
    assert not any("Traceback" in line for line in s.log), s.log
    return code


def test_a_second_sigterm_ends_the_answers_at_once(model_file: Path) -> None:
    assert _stream_then_signal_twice(model_file, signal.SIGTERM) == 0


def test_a_second_ctrl_c_ends_the_answers_cleanly(model_file: Path) -> None:
    assert _stream_then_signal_twice(model_file, signal.SIGINT) == 130  # Ctrl-C's exit code


def _incomplete_tail(data: bytes) -> int:
    """How many bytes at the end of `data` start a character without finishing it."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    decoder.decode(data)
    return len(decoder.getstate()[0])


def test_an_answer_cut_inside_a_character_drops_its_bytes(server: Server) -> None:
    cuts = 0
    for n in range(1, 25):
        body = {
            "messages": [{"role": "user", "content": CHINESE}],
            "temperature": 0,
            "max_tokens": n,
            "logprobs": True,
        }
        code, _h, reply = server.post("/v1/chat/completions", body)
        assert code == 200, reply
        choice = reply["choices"][0]
        entries = choice["logprobs"]["content"]
        data = b"".join(bytes(e["bytes"]) for e in entries)
        for e in entries:
            # The same names for a token's bytes as `llmcli run --probs --json` gives.
            assert e["token"] == piece_text(bytes(e["bytes"]))
        tail = _incomplete_tail(data)
        if choice["finish_reason"] != "length" or not tail:
            continue
        cuts += 1
        text = choice["message"]["content"]
        assert "\ufffd" not in text
        assert text == data[: len(data) - tail].decode("utf-8", "replace")
        assert "<0x" in entries[-1]["token"]
        # The stream ends the same way.
        body["stream"] = True
        sock = send_raw(server, "/v1/chat/completions", body)
        _code, _headers, raw = read_all(sock)
        assert b"\xef\xbf\xbd" not in raw and b"\\ufffd" not in raw.lower()
    assert cuts, "no answer of the test model ended inside a character"
