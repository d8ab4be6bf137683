"""The answer log's database on its own: writing, searching, pruning, upgrading, and
what happens when other processes write, die or hold it."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmcli.answer_log import database, schema
from llmcli.answer_log.entry import Entry, new_id
from llmcli.answer_log.recorder import Recorder


def entry(prompt: str, answer: str, *, conversation: str = "c1", **extra: object) -> Entry:
    return Entry(
        prompt=prompt,
        answer=answer,
        model="tiny.gguf",
        command="run",
        conversation_id=conversation,
        **extra,  # type: ignore[arg-type]
    )


def test_ids_sort_by_time() -> None:
    ids = [new_id() for _ in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50


def test_an_entry_comes_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    e = entry(
        "Why is the sky blue?",
        "Rayleigh scattering.",
        system="Be brief.",
        reasoning="Light scatters.",
        options={"temperature": 0.0, "seed": 7},
        prompt_tokens=12,
        completion_tokens=4,
        ttft_s=0.05,
        duration_s=0.2,
        finish_reason="stop",
        model_digest="sample:abc",
    )
    with database.opened(path) as conn:
        database.write(conn, e)
        (back,) = database.search(conn, database.Query())
    assert back == e


def test_search_filters_and_full_text(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    with database.opened(path) as conn:
        database.write(conn, entry("the king sat", "on a throne", created=100.0))
        database.write(conn, entry("a red apple", "is crunchy", created=200.0, conversation="c2"))
        other = entry("the queen's crown", "was gold", created=300.0)
        other.model = "other.gguf"
        database.write(conn, other)
        texts = lambda q: [e.prompt for e in database.search(conn, q)]  # noqa: E731
        # Oldest first, the latest `limit` of them.
        assert texts(database.Query(limit=2)) == ["a red apple", "the queen's crown"]
        assert texts(database.Query(limit=None, text="throne")) == ["the king sat"]
        # What the user types is words, never query syntax (quotes, AND, parentheses).
        assert texts(database.Query(limit=None, text="queen's")) == ["the queen's crown"]
        assert texts(database.Query(limit=None, text='"( AND')) == []
        assert texts(database.Query(limit=None, model="other.gguf")) == ["the queen's crown"]
        assert texts(database.Query(limit=None, conversation="c2")) == ["a red apple"]
        assert texts(database.Query(limit=None, since=150.0)) == [
            "a red apple",
            "the queen's crown",
        ]
        assert database.latest_conversation(conn, ["run"]) == "c1"
        assert database.entry_ids(conn, "") != [] and len(database.entry_ids(conn, "")) == 2
        assert database.conversation_ids(conn, "c") == ["c1", "c2"]


def test_removing_by_id_and_age_frees_the_index_too(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    with database.opened(path) as conn:
        old = entry("ancient words " * 200, "old", created=time.time() - 40 * 86400)
        keep = entry("recent words", "new")
        gone = entry("doomed words", "bye")
        for e in (old, keep, gone):
            database.write(conn, e)
        removed = database.remove(conn, path, ids=[gone.id], before=time.time() - 30 * 86400)
        assert removed.entries == 2
        assert [e.id for e in database.search(conn, database.Query(limit=None))] == [keep.id]
        assert database.search(conn, database.Query(limit=None, text="ancient")) == []
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_each_earlier_schema_upgrades_keeping_every_entry(tmp_path: Path) -> None:
    for start in range(1, schema.VERSION):
        path = tmp_path / f"v{start}.db"
        conn = sqlite3.connect(path, isolation_level=None)
        schema.migrate(conn, upto=start)
        assert schema.version_of(conn) == start
        conn.execute(
            "INSERT INTO responses (id, conversation_id, created, command, model, prompt, "
            "answer) VALUES ('0001', 'c', 1.0, 'run', 'm', 'an old prompt', 'an old answer')"
        )
        conn.close()
        status = database.status(path)
        assert status.schema == schema.VERSION and status.entries == 1
        with database.opened(path) as conn:
            (found,) = database.search(conn, database.Query(limit=None, text="old answer"))
            assert found.id == "0001" and found.prompt == "an old prompt"
            assert found.options == {}
        # Opening again applies nothing twice.
        with database.opened(path) as conn:
            assert schema.migrate(conn) == 0


_WRITER = """
import sys
from pathlib import Path
from llmcli.answer_log.entry import Entry
from llmcli.answer_log.recorder import Recorder
path, who, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
recorder = Recorder(path)
for i in range(n):
    recorder.record(Entry(f"{who} {i}", "x" * 2000, "m", "run", who))
failure = recorder.close(timeout=60)
print(failure or "ok")
"""


def test_four_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), f"w{i}", "150"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [o.strip() for o, _ in outs] == ["ok"] * 4, outs
    with database.opened(path) as conn:
        counts = dict(
            conn.execute("SELECT conversation_id, COUNT(*) FROM responses GROUP BY 1").fetchall()
        )
    assert counts == {f"w{i}": 150 for i in range(4)}


def test_a_writer_killed_mid_write_leaves_the_database_whole(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    with database.opened(path) as conn:
        for i in range(20):
            database.write(conn, entry(f"kept {i}", "answer"))
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), "doomed", "100000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and database.status(path).entries < 200:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with database.opened(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        kept = database.search(conn, database.Query(limit=None, conversation="c1"))
        assert [e.prompt for e in kept] == [f"kept {i}" for i in range(20)]
        assert database.search(conn, database.Query(limit=None, text="kept 7"))


def test_a_database_locked_by_another_program_costs_the_entry_only(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    with database.opened(path):
        pass
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        recorder = Recorder(path)
        start = time.monotonic()
        recorder.record(entry("p", "a"))
        failure = recorder.close()
        took = time.monotonic() - start
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert failure == "the log database is locked by another program"
    assert took < 30  # bounded; the busy timeout is a few seconds


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"this is not a database at all" * 100, "damaged"),
        (b"SQLite format 3\x00" + b"\xff" * 4000, "damaged"),
    ],
)
def test_a_damaged_file_is_named(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "logs.db"
    path.write_bytes(content)
    recorder = Recorder(path)
    recorder.record(entry("p", "a"))
    failure = recorder.close()
    assert failure is not None and why in failure
    assert path.read_bytes() == content  # left as it was, for the user to look at


def test_options_are_json(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    with database.opened(path) as conn:
        database.write(conn, entry("p", "a", options={"stop": ["\n"], "path": Path("/x")}))
        raw = conn.execute("SELECT options FROM responses").fetchone()[0]
    assert json.loads(raw) == {"path": "/x", "stop": ["\n"]}
