"""`llmcli serve` with several models: a request that names a model `llmcli list` shows
loads it, within --max-models and --max-memory; each model keeps its own keep-alive;
`ps`/`stop` see them all. Real servers, the real engine, the official openai client.

The second model is the test model again under another cached name (a hard link or copy
in this test's Hugging Face cache): to the server it is another model, loaded apart."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from clihelpers import run_cli
from test_serve import Server, start_server, stop

from llmcli.serve import errors
from llmcli.serve.residency import NoRoomError, TooLargeError, served_size

SECOND = "test/Second-GGUF:Q4_1"
CTX = "512"


@pytest.fixture
def second(model_file: Path) -> str:
    """The test model, cached as another Hub model: `llmcli list` shows it as SECOND."""
    cache = Path(os.environ["HF_HUB_CACHE"])
    repo_dir = cache / "models--test--Second-GGUF"
    snapshot = repo_dir / "snapshots" / ("b" * 40)
    snapshot.mkdir(parents=True)
    (repo_dir / "blobs").mkdir()
    (repo_dir / "refs").mkdir()
    blob = repo_dir / "blobs" / "second"  # not a Hub checksum: nothing to verify
    try:
        os.link(model_file, blob)
    except OSError:
        shutil.copyfile(model_file, blob)
    (snapshot / "Second.Q4_1.gguf").symlink_to("../../blobs/second")
    (repo_dir / "refs" / "main").write_text("b" * 40)
    listed = run_cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert SECOND in [m["name"] for m in json.loads(listed.stdout)]
    return SECOND


def _ask(server: Server, model: str | None, **extra: Any) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, **extra}
    if model is not None:
        body["model"] = model
    status, _, answer = server.post("/v1/chat/completions", body)
    assert status == 200, answer
    return answer


def _loaded(server: Server) -> list[str]:
    return sorted(m["name"] for m in server.get("/api/ps")["models"])


def _wait_for(server: Server, names: list[str]) -> None:
    deadline = time.monotonic() + 60
    while _loaded(server) != sorted(names):
        assert time.monotonic() < deadline, f"still loaded: {_loaded(server)}"
        time.sleep(0.5)


def test_a_named_model_loads_on_demand_and_both_answer_at_once(
    model_file: Path, second: str
) -> None:
    server = start_server(model_file, "--parallel", "2", "--ctx", CTX, "--max-models", "2")
    try:
        client = server.client()
        listed = {m.id: m.model_extra or {} for m in client.models.list().data}
        assert listed[model_file.name]["loaded"] is True
        assert listed[second]["loaded"] is False and listed[second]["status"] == "available"
        assert _loaded(server) == [model_file.name]

        reply = client.chat.completions.create(
            model=second, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
        assert reply.model == second and reply.choices[0].message.content is not None
        assert _loaded(server) == sorted([model_file.name, second])
        assert any(line.startswith(f"loaded {second}") for line in server.log), server.log
        assert any(f"[{second}]" in line for line in server.log)
        listed = {m.id: m.model_extra or {} for m in client.models.list().data}
        assert listed[second]["loaded"] is True

        # 8 requests at once, across the two models: every one answered, by its model.
        def ask(i: int) -> tuple[str, str | None]:
            model = second if i % 2 else model_file.name
            got = client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": f"Count to {i + 2}."}],
                max_tokens=12,
            )
            return got.model, got.choices[0].finish_reason

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(8)))
        assert [m for m, _ in answers] == [second if i % 2 else model_file.name for i in range(8)]
        assert all(reason in ("stop", "length") for _, reason in answers)

        # ps shows both, stop unloads one; the other stays and answers.
        ps = run_cli("ps", "--url", server.url, "--json")
        assert ps.returncode == 0, ps.stderr
        models = {m["name"]: m for m in json.loads(ps.stdout)["models"]}
        assert set(models) == {model_file.name, second}
        for m in models.values():
            assert m["parallel"] == 2 and m["size"] > 0 and m["expires_at"] is None
        plain = run_cli("ps", "--url", server.url)
        assert plain.returncode == 0 and len(plain.stdout.splitlines()) == 3

        stopped = run_cli("stop", "--url", server.url, second)
        assert stopped.returncode == 0 and "unloaded" in stopped.stderr, stopped.stderr
        assert _loaded(server) == [model_file.name]
        assert _ask(server, None)["model"] == model_file.name
        again = run_cli("stop", "--url", server.url, second)
        assert again.returncode == 0 and "was not loaded" in again.stderr
    finally:
        assert stop(server) == 0


def test_the_least_recently_used_model_goes_under_max_models_1(
    model_file: Path, second: str
) -> None:
    server = start_server(model_file, "--parallel", "1", "--ctx", CTX, "--max-models", "1")
    try:
        assert _ask(server, second)["model"] == second
        assert _loaded(server) == [second]
        assert _ask(server, None)["model"] == model_file.name
        assert _loaded(server) == [model_file.name]
        made_room = f"unloaded {second}: least recently used, to make room for {model_file.name}"
        assert made_room in server.log
        listed = {m["id"]: m["loaded"] for m in server.get("/v1/models")["data"]}
        assert listed == {model_file.name: True, second: False}
    finally:
        assert stop(server) == 0


def test_a_tight_memory_budget_swaps_models_and_refuses_one_that_cannot_fit(
    model_file: Path, second: str
) -> None:
    one = served_size(model_file, ctx=int(CTX), parallel=1)
    budget = str(one * 3 // 2)  # room for one model, not two
    server = start_server(model_file, "--parallel", "1", "--ctx", CTX, "--max-memory", budget)
    try:
        assert _ask(server, second)["model"] == second
        assert _loaded(server) == [second]
        assert _ask(server, None)["model"] == model_file.name
        assert _loaded(server) == [model_file.name]

        # While the loaded model answers, the other one has no room: refused, and the
        # answer in flight runs to its end.
        body = {
            "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,",
            "max_tokens": 200,
            "temperature": 0,
            "stream": True,
        }
        request = urllib.request.Request(
            f"{server.url}/v1/completions", data=json.dumps(body).encode(), method="POST"
        )
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.readline().startswith(b"data:")
            status, headers, refused = server.post(
                "/v1/chat/completions",
                {"model": second, "messages": [{"role": "user", "content": "Hi"}]},
            )
            rest = [line for line in response.read().splitlines() if line.startswith(b"data:")]
        assert status == 503, refused
        error = refused["error"]
        assert error["code"] == "model_capacity" and error["param"] == "model"
        assert second in error["message"] and "--max-memory" in error["message"]
        assert headers["retry-after"] == "1"
        assert rest[-1] == b"data: [DONE]"
        assert _loaded(server) == [model_file.name]
        assert _ask(server, None)["choices"][0]["message"]["content"] is not None
    finally:
        assert stop(server) == 0


def test_each_model_keeps_its_own_keep_alive(model_file: Path, second: str) -> None:
    server = start_server(model_file, "--parallel", "1", "--ctx", CTX, "--max-models", "2")
    try:
        _ask(server, second, keep_alive="1s")
        models = {m["name"]: m for m in server.get("/api/ps")["models"]}
        assert models[second]["keep_alive"] == 1
        assert models[model_file.name]["keep_alive"] is None
        _wait_for(server, [model_file.name])  # the default model stays: -1, forever

        _ask(server, second, keep_alive=0)  # unloaded once its answer ends
        _wait_for(server, [model_file.name])
    finally:
        assert stop(server) == 0


def test_unknown_models_and_bad_budgets_are_refused(model_file: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.gguf"
    try:
        os.link(model_file, elsewhere)
    except OSError:
        shutil.copyfile(model_file, elsewhere)
    server = start_server(model_file, "--parallel", "1", "--ctx", CTX)
    try:
        status, _, body = server.post(
            "/v1/chat/completions",
            {"model": "nobody/Nothing-GGUF", "messages": [{"role": "user", "content": "Hi"}]},
        )
        assert status == 404 and body["error"]["code"] == "model_not_found"
        # A path is not a model name: the server reads only what `llmcli list` shows.
        status, _, body = server.post("/v1/completions", {"model": str(elsewhere), "prompt": "Hi"})
        assert status == 404 and body["error"]["param"] == "model"
        assert _loaded(server) == [model_file.name]
    finally:
        assert stop(server) == 0
    bad = run_cli("serve", "-m", str(model_file), "--max-memory", "lots", "--port", "1")
    assert bad.returncode == 2 and "--max-memory" in bad.stderr
    small = run_cli("serve", "-m", str(model_file), "--max-memory", "1MB", "--port", "1")
    assert small.returncode == 2 and "--max-memory" in small.stderr
    assert len(small.stderr.strip().splitlines()) == 1


def test_the_error_table_answers_a_model_that_cannot_be_loaded() -> None:
    busy = errors.api_error(NoRoomError("no room"), "POST", "/v1/chat/completions")
    assert (busy.status, busy.code, busy.param) == (503, "model_capacity", "model")
    huge = errors.api_error(TooLargeError("too large"), "POST", "/v1/messages")
    assert (huge.status, huge.code, huge.param) == (507, "model_too_large", "model")
