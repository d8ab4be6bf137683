"""`llmcli serve`: a real server on 127.0.0.1 with the real model, driven by the official
openai client and by raw HTTP."""

from __future__ import annotations

import json
import math
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
from clihelpers import cli_command, run_cli

QUESTION = "What is the capital of France?"
# urllib would declare a form, which the server refuses.
JSON = {"Content-Type": "application/json"}
THREADS = "2"


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str
    log: list[str]

    def client(self, key: str = "unused") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=60)

    def post(
        self,
        path: str,
        body: bytes | dict[str, Any],
        key: str | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        if key is not None:
            request.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, _lower(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _lower(exc.headers), json.loads(exc.read())

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as response:
            return json.loads(response.read())


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    import os

    port = _free_port()
    proc = subprocess.Popen(
        cli_command("serve", "-m", str(model), "--port", str(port), "--threads", THREADS, *args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    log: list[str] = []
    assert proc.stderr is not None
    stderr = proc.stderr

    def collect() -> None:
        for line in stderr:
            log.append(line.rstrip("\n"))

    threading.Thread(target=collect, daemon=True).start()
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log}")
        try:
            server.get("/health")
            return server
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not start: {log}")


def stop(server: Server) -> int:
    server.proc.send_signal(signal.SIGTERM)
    return server.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def server(model_file: Path) -> Iterator[Server]:
    s = start_server(model_file, "--parallel", "8", "--ctx", "1024")
    yield s
    assert stop(s) == 0


def chat_body(content: str = QUESTION, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], **extra}


# -- answers ----------------------------------------------------------------------------


def test_greedy_chat_equals_llmcli_run(server: Server, model_file: Path) -> None:
    reply = server.client().chat.completions.create(
        model=model_file.name,
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=24,
    )
    expected = run_cli(
        "run",
        "-m",
        str(model_file),
        "--temperature",
        "0",
        "-n",
        "24",
        "--threads",
        THREADS,
        QUESTION,
    )
    assert expected.returncode == 0, expected.stderr
    assert reply.choices[0].message.content == expected.stdout.removesuffix("\n")
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 24
    assert reply.usage.prompt_tokens > 20


def test_streamed_chat_gives_the_same_text_and_usage(server: Server) -> None:
    client = server.client()
    whole = client.chat.completions.create(
        messages=[{"role": "user", "content": "Name three colors."}],
        model=server_model(server),
        temperature=0,
        max_tokens=30,
    )
    pieces = []
    usage = None
    finish = None
    for chunk in client.chat.completions.create(
        messages=[{"role": "user", "content": "Name three colors."}],
        model=server_model(server),
        temperature=0,
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def server_model(server: Server) -> str:
    return str(server.get("/v1/models")["data"][0]["id"])


def test_completions_embeddings_and_models(server: Server, model_file: Path) -> None:
    client = server.client()
    done = client.completions.create(
        model=model_file.name, prompt="The capital of France is", temperature=0, max_tokens=8
    )
    assert done.choices[0].text and done.usage is not None and done.usage.completion_tokens <= 8

    vectors = client.embeddings.create(model=model_file.name, input=["king", "queen", "apple"])
    king, queen, apple = (d.embedding for d in vectors.data)
    assert len(king) == 576 and vectors.usage.prompt_tokens >= 3

    def cos(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    cli = run_cli("embed", "-m", str(model_file), "king")
    assert cli.returncode == 0, cli.stderr
    reference = json.loads(cli.stdout.splitlines()[0])["embedding"]
    assert cos(king, reference) > 0.9999
    assert cos(king, queen) > cos(king, apple) - 0.2  # same space as `llmcli embed`

    listed = client.models.list()
    assert listed.data[0].id == model_file.name


def test_json_schema_output_validates(server: Server) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    reply = server.client().chat.completions.create(
        model=server_model(server),
        messages=[{"role": "user", "content": "Invent a person."}],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
        temperature=0,
        max_tokens=60,
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), schema)


def test_logprobs_with_top_alternatives(server: Server) -> None:
    reply = server.client().chat.completions.create(
        model=server_model(server),
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=6,
        logprobs=True,
        top_logprobs=3,
    )
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and len(content) == 6
    text = ""
    for item in content:
        assert item.logprob <= 0 and len(item.top_logprobs) == 3
        tops = [t.logprob for t in item.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        # Greedy: the chosen token is the likeliest one.
        assert item.token == item.top_logprobs[0].token
        assert math.isclose(item.logprob, tops[0], abs_tol=1e-6)
        text += item.token
    assert text == reply.choices[0].message.content


# -- errors -------------------------------------------------------------------------------


def test_errors_have_openai_shape_and_status(server: Server, model_file: Path) -> None:
    cases: list[tuple[bytes | dict[str, Any], int, str]] = [
        (b"{not json", 400, "not valid JSON"),
        (chat_body(temperature=5), 400, "temperature"),
        (chat_body(n=2), 400, "'n'"),
        (chat_body(functions=[{"name": "f"}]), 400, "functions"),
        (chat_body(tools=[{"type": "function", "function": {"name": "a b"}}]), 400, "tools"),
        (chat_body(model="no-such-model"), 404, "not found"),
        ({"messages": []}, 400, "messages"),
        (chat_body(response_format={"type": "xml"}), 400, "response_format"),
    ]
    for body, status, words in cases:
        code, _headers, reply = server.post("/v1/chat/completions", body)
        assert code == status, (body, reply)
        error = reply["error"]
        assert words in error["message"] and error["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        server.client().chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )


def test_prompt_over_the_context_and_a_full_queue(model_file: Path) -> None:
    small = start_server(model_file, "--parallel", "1", "--queue", "0", "--ctx", "128")
    try:
        code, _h, reply = small.post("/v1/chat/completions", chat_body("word " * 300))
        assert code == 400 and reply["error"]["code"] == "context_length_exceeded"
        assert "128" in reply["error"]["message"] and "tokens" in reply["error"]["message"]

        busy = threading.Thread(
            target=small.post, args=("/v1/completions", {"prompt": "Once upon", "max_tokens": 100})
        )
        busy.start()
        while small.get("/health")["active"] == 0:
            time.sleep(0.01)
        code, headers, reply = small.post("/v1/completions", {"prompt": "Hi", "max_tokens": 2})
        busy.join()
        assert code == 503 and headers.get("retry-after") == "1"
        assert reply["error"]["type"] == "server_error"
    finally:
        assert stop(small) == 0


def test_api_key_is_required_compared_and_never_logged(model_file: Path) -> None:
    secret = "s3cret-key-value"
    keyed = start_server(model_file, "--parallel", "1", env={"LLMCLI_API_KEY": secret})
    try:
        assert keyed.post("/v1/completions", {"prompt": "Hi", "max_tokens": 1})[0] == 401
        assert (
            keyed.post("/v1/completions", {"prompt": "Hi", "max_tokens": 1}, key="wrong")[0] == 401
        )
        with pytest.raises(openai.AuthenticationError):
            keyed.client("wrong").models.list()
        ok = keyed.client(secret).completions.create(
            model=keyed.get("/health")["model"], prompt="Hi", max_tokens=2
        )
        assert ok.choices[0].text is not None
    finally:
        assert stop(keyed) == 0
    assert secret not in "\n".join(keyed.log)
    assert any('"POST /v1/completions" 401' in line for line in keyed.log)


def test_network_address_needs_a_key_or_an_explicit_flag(model_file: Path) -> None:
    proc = run_cli("serve", "-m", str(model_file), "--host", "0.0.0.0", "--port", "1")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "API key" in proc.stderr


# -- many clients, disconnects, shutdown -----------------------------------------------------


def test_eight_concurrent_requests_are_all_answered(server: Server) -> None:
    client = server.client()
    results: dict[int, str] = {}

    def ask(i: int) -> None:
        reply = client.chat.completions.create(
            model=server_model(server),
            messages=[{"role": "user", "content": f"Count to {i + 3}."}],
            temperature=0,
            max_tokens=32,
        )
        results[i] = reply.choices[0].message.content or ""

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == list(range(8)) and all(results.values())


def test_a_client_that_disconnects_frees_its_sequence(server: Server) -> None:
    body = chat_body("Write a very long story.", max_tokens=900, stream=True)
    request = urllib.request.Request(
        f"{server.url}/v1/chat/completions", data=json.dumps(body).encode(), headers=JSON
    )
    response = urllib.request.urlopen(request, timeout=60)
    response.readline()
    response.readline()
    # The role chunk is sent before the scheduler's next step admits the job.
    deadline = time.monotonic() + 30
    while server.get("/health")["active"] != 1:
        assert time.monotonic() < deadline, "the request never began answering"
        time.sleep(0.02)
    response.close()
    deadline = time.monotonic() + 10
    while server.get("/health")["active"] != 0:
        assert time.monotonic() < deadline, "the sequence was never freed"
        time.sleep(0.05)


def test_sigterm_ends_answers_in_flight_and_exits(model_file: Path) -> None:
    s = start_server(model_file, "--parallel", "2", "--grace", "1")
    body = chat_body("Write a very long story.", max_tokens=2000, stream=True)
    request = urllib.request.Request(
        f"{s.url}/v1/chat/completions", data=json.dumps(body).encode(), headers=JSON
    )
    response = urllib.request.urlopen(request, timeout=60)
    response.readline()
    s.proc.send_signal(signal.SIGTERM)
    events = [line.decode() for line in response.read().splitlines() if line.startswith(b"data:")]
    assert events[-1] == "data: [DONE]"
    last = json.loads(events[-2][len("data: ") :])
    assert last["choices"][0]["finish_reason"] == "length"
    assert s.proc.wait(timeout=30) == 0
    assert any("stopped" in line for line in s.log)


def test_run_batch_parallel_gives_the_sequential_lines(model_file: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(
        "Say hi\nName a color\n"
        + json.dumps({"prompt": "Count to 3", "id": "c"})
        + "\n{not json\nWhat is 2+2?\n"
    )
    args = (
        "run",
        "-m",
        str(model_file),
        "--batch",
        str(prompts),
        "--temperature",
        "0",
        "-n",
        "12",
        "--threads",
        THREADS,
    )
    one = run_cli(*args)
    many = run_cli(*args, "--parallel", "3")
    assert one.returncode == many.returncode == 8  # the malformed line fails in both
    a = [json.loads(line) for line in one.stdout.splitlines()]
    b = [json.loads(line) for line in many.stdout.splitlines()]
    assert [x["index"] for x in b] == list(range(5)) and b[2]["id"] == "c"
    for x, y in zip(a, b, strict=True):
        assert (x.get("text"), bool(x.get("error"))) == (y.get("text"), bool(y.get("error")))
        assert x.get("usage", {}).get("completion_tokens") == y.get("usage", {}).get(
            "completion_tokens"
        )


def test_thinking_is_apart_from_the_answer(family_model: Any) -> None:
    # DeepSeek-R1's template opens <think> itself, so all the test model writes (it
    # never closes the block) is thinking: none of it may reach `content`.
    r1 = start_server(family_model("deepseek-r1-distill", weights=True), "--parallel", "1")
    try:
        client = r1.client()
        whole = client.chat.completions.create(
            model=r1.get("/health")["model"],
            messages=[{"role": "user", "content": QUESTION}],
            temperature=0,
            max_tokens=16,
        )
        message = whole.choices[0].message
        assert message.content == ""
        thought = message.model_extra["reasoning_content"]  # type: ignore[index]
        assert thought.strip()
        streamed = [
            chunk.choices[0].delta
            for chunk in client.chat.completions.create(
                model=r1.get("/health")["model"],
                messages=[{"role": "user", "content": QUESTION}],
                temperature=0,
                max_tokens=16,
                stream=True,
            )
            if chunk.choices
        ]
        assert not "".join(d.content or "" for d in streamed)
        parts = "".join((d.model_extra or {}).get("reasoning_content", "") for d in streamed)
        assert parts.strip() == thought.strip()
    finally:
        assert stop(r1) == 0
