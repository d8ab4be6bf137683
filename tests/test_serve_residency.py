"""The served model's load state: `llmcli ps`, `llmcli stop`, loading again on demand,
keep-alive; the logic with stand-ins, then a real server driven by the real commands."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from clihelpers import run_cli
from test_serve import Server, start_server, stop

from llmcli.humanize import format_seconds, parse_keep_alive
from llmcli.serve.residency import KeepAlive, Limits, NoRoomError, Residency, TooLargeError

# -- stand-ins ---------------------------------------------------------------------------


class FakeScheduler:
    parallel = 2
    ctx_per_sequence = 256

    def __init__(self) -> None:
        self.jobs = 0
        self.closed = False

    def load(self) -> tuple[int, int]:
        return (self.jobs, 0)

    def close(self) -> None:
        self.closed = True

    def stop_accepting(self) -> None:
        pass


class FakeModel:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


M = Path("m.gguf")


def _residency(
    keep_alive: float | None,
    *,
    max_models: int = 3,
    max_memory: int | None = None,
    sizes: dict[str, int] | None = None,
    free: int | None = None,
) -> tuple[Residency, Clock, list[Any]]:
    """A residency of stand-ins; `sizes`: bytes by file name (10 unless named)."""
    clock = Clock()
    loads: list[Any] = []

    def load(name: str, path: Path) -> Any:
        pair = (FakeModel(), FakeScheduler())
        loads.append(pair)
        return pair

    def size_of(path: Path) -> int:
        return (sizes or {}).get(path.name, 10)

    limits = Limits(max_models=max_models, max_memory=max_memory, available=lambda: free)
    r = Residency(load=load, size_of=size_of, limits=limits, keep_alive=keep_alive, clock=clock)
    return r, clock, loads


def test_keep_alive_durations_as_ollama_takes_them() -> None:
    assert parse_keep_alive("5m") == 300
    assert parse_keep_alive("1h30m") == 5400
    assert parse_keep_alive("30s") == 30
    assert parse_keep_alive(0) == 0
    assert parse_keep_alive(12.5) == 12.5
    assert parse_keep_alive("-1") is None
    assert parse_keep_alive(-1) is None
    assert parse_keep_alive("forever") is None
    for bad in ("soon", "5x", "", True):
        with pytest.raises(ValueError):
            parse_keep_alive(bad)
    assert [format_seconds(s) for s in (45, 252, 3600, 7500)] == ["45s", "4m 12s", "1h", "2h 5m"]


def test_idle_model_unloads_after_keep_alive_and_loads_again() -> None:
    r, clock, loads = _residency(keep_alive=60)
    held = r.acquire("m", M)
    r.release(held)
    clock.now += 59
    r.expire()
    assert r.get("m") is held
    clock.now += 2
    r.expire()
    assert r.get("m") is None
    assert loads[0][0].closed and loads[0][1].closed
    again = r.acquire("m", M)  # the next request loads it again
    assert len(loads) == 2 and r.get("m") is again
    r.release(again)
    r.close()


def test_a_busy_model_is_never_unloaded_and_a_stop_waits_for_it() -> None:
    r, clock, loads = _residency(keep_alive=1)
    held = r.acquire("m", M)
    clock.now += 100
    r.expire()
    assert r.get("m") is held  # a request holds it
    r.release(held)
    held.scheduler.jobs = 1  # its answer is still streaming
    clock.now += 100
    r.expire()
    assert r.get("m") is held
    assert r.stop("m") == (True, False)  # asked while busy: it goes once idle
    assert r.describe()[0]["unloading"] is True
    held.scheduler.jobs = 0
    r.expire()
    assert r.get("m") is None and loads[0][0].closed


def test_a_request_keep_alive_replaces_the_servers() -> None:
    r, clock, _ = _residency(keep_alive=None)
    r.release(r.acquire("m", M, KeepAlive(5)))
    (entry,) = r.describe()
    assert entry["keep_alive"] == 5 and entry["expires_at"] == clock.now + 5
    r.release(r.acquire("m", M, KeepAlive(None)))
    assert r.describe()[0]["expires_at"] is None
    clock.now += 10_000
    r.expire()
    assert r.get("m") is not None
    r.close()
    assert r.get("m") is None


def test_lru_idle_model_makes_room_and_a_busy_one_never_does() -> None:
    r, clock, loads = _residency(None, max_models=2)
    a = r.acquire("a", Path("a.gguf"))
    clock.now += 1
    b = r.acquire("b", Path("b.gguf"))
    r.release(b)
    clock.now += 1
    r.release(a)  # a was used last: b goes first
    c = r.acquire("c", Path("c.gguf"))
    assert sorted(r.names()) == ["a", "c"] and loads[1][0].closed and not loads[0][0].closed
    again = r.acquire("a", Path("a.gguf"))
    with pytest.raises(NoRoomError, match="--max-models"):
        r.acquire("d", Path("d.gguf"))  # both held: neither may go
    r.release(again)
    r.release(c)
    c.scheduler.jobs = 1  # c still answering: a goes
    r.release(r.acquire("d", Path("d.gguf")))
    assert sorted(r.names()) == ["c", "d"] and loads[0][0].closed
    r.close()


def test_the_memory_budget_decides_what_goes_and_what_never_loads() -> None:
    sizes = {"a.gguf": 40, "b.gguf": 40, "big.gguf": 70, "huge.gguf": 101}
    r, clock, _ = _residency(None, max_memory=100, sizes=sizes)
    r.release(r.acquire("a", Path("a.gguf")))
    clock.now += 1
    r.release(r.acquire("b", Path("b.gguf")))
    clock.now += 1
    r.release(r.acquire("big", Path("big.gguf")))  # 80 taken: both must go
    assert r.names() == ["big"]
    with pytest.raises(TooLargeError, match="--max-memory"):
        r.acquire("huge", Path("huge.gguf"))
    held = r.acquire("big", Path("big.gguf"))
    with pytest.raises(NoRoomError, match="busy: big"):
        r.acquire("a", Path("a.gguf"))
    assert r.names() == ["big"]  # the refused load harmed nothing
    r.release(held)
    r.close()


def test_what_the_machine_has_free_also_bounds_a_load() -> None:
    r, _, _ = _residency(None, sizes={"a.gguf": 50}, free=20)
    with pytest.raises(NoRoomError, match="free"):
        r.acquire("a", Path("a.gguf"))
    assert r.names() == []


def test_each_model_keeps_its_own_keep_alive() -> None:
    r, clock, _ = _residency(keep_alive=None)
    r.release(r.acquire("a", Path("a.gguf"), KeepAlive(5)))
    r.release(r.acquire("b", Path("b.gguf")))
    clock.now += 6
    r.expire()
    assert r.names() == ["b"]
    r.close()


# -- a real server -----------------------------------------------------------------------


def _ps(server: Server) -> dict[str, Any]:
    proc = run_cli("ps", "--url", server.url, "--json")
    assert proc.returncode == 0, proc.stderr
    parsed: dict[str, Any] = json.loads(proc.stdout)
    return parsed


def _wait_unloaded(server: Server) -> None:
    deadline = time.monotonic() + 60
    while server.get("/api/ps")["models"]:
        assert time.monotonic() < deadline, "the model was never unloaded"
        time.sleep(0.5)


def _ask(server: Server, **extra: Any) -> dict[str, Any]:
    status, _, body = server.post(
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, **extra},
    )
    assert status == 200, body
    return body


def test_ps_stop_and_loading_again_on_a_real_server(model_file: Path) -> None:
    server = start_server(model_file, "--parallel", "2", "--ctx", "512")
    try:
        (model,) = _ps(server)["models"]
        assert model["name"] == model_file.name
        assert model["parallel"] == 2 and model["context_length"] == 512
        assert model["size"] > model_file.stat().st_size * 0.9
        assert model["expires_at"] is None and model["keep_alive"] is None

        plain = run_cli("ps", "--url", server.url)
        assert plain.returncode == 0, plain.stderr
        header, line = plain.stdout.splitlines()
        assert header.split()[:3] == ["NAME", "SIZE", "SLOTS"]
        assert line.startswith(model_file.name) and "forever" in line and "0/2" in line

        port = server.url.rsplit(":", 1)[1]
        stopped = run_cli("stop", "--port", port, model_file.name)
        assert stopped.returncode == 0, stopped.stderr
        assert "unloaded" in stopped.stderr
        assert _ps(server)["models"] == []
        assert server.get("/health")["status"] == "ok"
        assert server.get("/v1/models")["data"][0]["loaded"] is False
        none = run_cli("ps", "--url", server.url)
        assert none.returncode == 0 and none.stdout == "" and "no model" in none.stderr

        # The next request loads it again, and is answered.
        assert _ask(server)["choices"][0]["message"]["content"] is not None
        assert [m["name"] for m in _ps(server)["models"]] == [model_file.name]
        assert server.get("/v1/models")["data"][0]["loaded"] is True

        # A request's keep_alive: unloaded once idle that long.
        _ask(server, keep_alive="1s")
        assert server.get("/api/ps")["models"][0]["keep_alive"] == 1
        _wait_unloaded(server)

        status, _, body = server.post(
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "Hi"}], "keep_alive": "soon"},
        )
        assert status == 400 and body["error"]["param"] == "keep_alive"

        unknown = run_cli("stop", "--url", server.url, "no-such-model")
        assert unknown.returncode == 3 and len(unknown.stderr.strip().splitlines()) == 1
    finally:
        assert stop(server) == 0


def test_keep_alive_option_unloads_an_idle_model(model_file: Path) -> None:
    bad = run_cli("serve", "-m", str(model_file), "--keep-alive", "soon", "--port", "1")
    assert bad.returncode == 2 and "--keep-alive" in bad.stderr

    server = start_server(model_file, "--parallel", "1", "--ctx", "512", "--keep-alive", "1s")
    try:
        _wait_unloaded(server)
        _ask(server)  # loaded again on demand, then unloaded when idle
        _wait_unloaded(server)
    finally:
        assert stop(server) == 0


def test_ps_and_stop_need_the_key_of_a_keyed_server(model_file: Path) -> None:
    server = start_server(model_file, "--parallel", "1", "--ctx", "512", "--api-key", "sesame")
    try:
        refused = run_cli("ps", "--url", server.url)
        assert refused.returncode == 1 and "401" in refused.stderr
        assert "sesame" not in refused.stderr
        allowed = run_cli("ps", "--url", server.url, "--json", env={"LLMCLI_API_KEY": "sesame"})
        assert allowed.returncode == 0 and json.loads(allowed.stdout)["models"]
        unreachable = run_cli("ps", "--url", "http://127.0.0.1:1")
        assert unreachable.returncode == 6 and "no server answers" in unreachable.stderr
    finally:
        assert stop(server) == 0


def test_a_stop_during_an_answer_waits_for_it_to_end(model_file: Path) -> None:
    server = start_server(model_file, "--parallel", "1", "--ctx", "512")
    body = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 200, "temperature": 0}
    request = urllib.request.Request(
        f"{server.url}/v1/completions",
        data=json.dumps({**body, "stream": True}).encode(),
        method="POST",
    )
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.readline().startswith(b"data:")
            status, _, stopped = server.post("/api/stop", {"model": model_file.name})
            assert status == 200, stopped
            assert stopped["was_loaded"] is True and stopped["unloaded"] is False
            assert server.get("/api/ps")["models"][0]["unloading"] is True
            rest = [line for line in response.read().splitlines() if line.startswith(b"data:")]
        # The answer ran to its end, then the model went.
        assert rest[-1] == b"data: [DONE]"
        last = json.loads(rest[-2][len(b"data: ") :])
        assert last["choices"][0]["finish_reason"] == "length"
        _wait_unloaded(server)
    finally:
        assert stop(server) == 0
