"""Reading and writing the log database.

Connections are in autocommit mode: each write is one INSERT (its full-text row comes
with it, by trigger), atomic on its own. WAL lets readers and one writer work at once and
survives a process killed mid-write; a writer that finds the database locked waits at
most `BUSY_TIMEOUT` seconds, so a database held by another program costs an answer's
log entry, never the answer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from llmcli import config
from llmcli.answer_log.entry import Entry
from llmcli.answer_log.problems import FAILURES, LogError, reason
from llmcli.answer_log.schema import VERSION, migrate, version_of
from llmcli.errors import UsageError

FILENAME = "logs.db"
BUSY_TIMEOUT = 2.0

_COLUMNS = tuple(f.name for f in fields(Entry))


def log_path() -> Path:
    return config.user_data_dir() / FILENAME


def connect(path: Path | None = None, *, timeout: float = BUSY_TIMEOUT) -> sqlite3.Connection:
    """An open, up-to-date database (created when missing)."""
    path = path or log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL loses nothing to a killed process, only to a power cut.
        conn.execute("PRAGMA synchronous=NORMAL")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def opened(path: Path | None = None) -> Iterator[sqlite3.Connection]:
    """A connection for a command that reads or prunes the log: any failure of the
    database becomes a `LogError` that says what is wrong."""
    try:
        with closing(connect(path)) as conn:
            yield conn
    except FAILURES as exc:
        raise LogError(reason(exc)) from None


def write(conn: sqlite3.Connection, entry: Entry) -> None:
    values = [getattr(entry, name) for name in _COLUMNS]
    values[_COLUMNS.index("options")] = json.dumps(entry.options, sort_keys=True, default=str)
    marks = ", ".join("?" for _ in _COLUMNS)
    conn.execute(f"INSERT INTO responses ({', '.join(_COLUMNS)}) VALUES ({marks})", values)


def _entry(row: sqlite3.Row) -> Entry:
    data = {name: row[name] for name in _COLUMNS}
    data["options"] = json.loads(row["options"] or "{}")
    return Entry(**data)


@dataclass(frozen=True)
class Query:
    """Which entries `search` returns: the `limit` latest (the best matches with `text`),
    optionally of one model, one conversation, or since a time."""

    limit: int | None = 3
    text: str | None = None
    model: str | None = None
    conversation: str | None = None
    since: float | None = None


def search(conn: sqlite3.Connection, query: Query) -> list[Entry]:
    """Matching entries, oldest first (so that the latest reads last)."""
    where: list[str] = []
    args: list[Any] = []
    source = "responses r"
    order = "r.created DESC, r.id DESC"
    if query.text:
        source += " JOIN responses_fts ON responses_fts.rowid = r.rowid"
        where.append("responses_fts MATCH ?")
        args.append(fts_phrase(query.text))
        order = "responses_fts.rank, r.created DESC"
    if query.model:
        where.append("r.model = ?")
        args.append(query.model)
    if query.conversation:
        where.append("r.conversation_id = ?")
        args.append(query.conversation)
    if query.since is not None:
        where.append("r.created >= ?")
        args.append(query.since)
    sql = f"SELECT r.* FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {order}"
    if query.limit is not None:
        sql += " LIMIT ?"
        args.append(query.limit)
    rows = [_entry(row) for row in conn.execute(sql, args)]
    rows.sort(key=lambda e: (e.created, e.id))
    return rows


def fts_phrase(text: str) -> str:
    """The words of `text`, each quoted, all required: whatever the user types is words
    to find, never FTS5 query syntax that could fail to parse."""
    words = text.split()
    return " ".join('"' + w.replace('"', '""') + '"' for w in words) or '""'


def conversation(conn: sqlite3.Connection, conversation_id: str) -> list[Entry]:
    return search(conn, Query(limit=None, conversation=conversation_id))


def latest_conversation(conn: sqlite3.Connection, commands: Sequence[str]) -> str | None:
    """The id of the conversation answered last by one of `commands`."""
    marks = ", ".join("?" for _ in commands)
    row = conn.execute(
        f"SELECT conversation_id FROM responses WHERE command IN ({marks}) "
        "ORDER BY created DESC, id DESC LIMIT 1",
        list(commands),
    ).fetchone()
    return None if row is None else str(row[0])


def conversation_ids(conn: sqlite3.Connection, prefix: str) -> list[str]:
    """Conversation ids that start with `prefix` (at most two: enough to tell it is
    ambiguous)."""
    rows = conn.execute(
        "SELECT DISTINCT conversation_id FROM responses WHERE conversation_id >= ? "
        "AND conversation_id < ? LIMIT 2",
        (prefix, prefix + "\U0010ffff"),
    )
    return [str(r[0]) for r in rows]


def conversation_id(conn: sqlite3.Connection, given: str) -> str:
    """The one conversation id that starts with `given` (ids may be given shortened)."""
    return _the_one(conversation_ids(conn, given), given, "conversation")


def entry_ids(conn: sqlite3.Connection, prefix: str) -> list[str]:
    """Entry ids that start with `prefix` (at most two: enough to tell it is ambiguous)."""
    rows = conn.execute(
        "SELECT id FROM responses WHERE id >= ? AND id < ? LIMIT 2", (prefix, prefix + "~")
    )
    return [str(r[0]) for r in rows]


def entry_id(conn: sqlite3.Connection, given: str) -> str:
    """The one entry id that starts with `given`."""
    return _the_one(entry_ids(conn, given), given, "answer")


def _the_one(found: list[str], given: str, what: str) -> str:
    if not found:
        raise UsageError(f"no logged {what} has the id {given!r} (`llmcli logs` shows ids)")
    if len(found) > 1:
        raise UsageError(f"{given!r} starts more than one {what} id: give more of it")
    return found[0]


@dataclass(frozen=True)
class Removed:
    entries: int
    bytes_freed: int


def remove(
    conn: sqlite3.Connection, path: Path, *, ids: Sequence[str] = (), before: float | None = None
) -> Removed:
    """Delete entries by id or created before a time, then give the space back to the
    file system."""
    size = disk_size(path)
    count = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for entry_id in ids:
            count += conn.execute("DELETE FROM responses WHERE id = ?", (entry_id,)).rowcount
        if before is not None:
            count += conn.execute("DELETE FROM responses WHERE created < ?", (before,)).rowcount
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if count:
        conn.execute("INSERT INTO responses_fts (responses_fts) VALUES ('optimize')")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Removed(count, max(0, size - disk_size(path)))


def disk_size(path: Path) -> int:
    """The database with its write-ahead log."""
    total = 0
    for suffix in ("", "-wal"):
        with suppress(OSError):
            total += Path(f"{path}{suffix}").stat().st_size
    return total


@dataclass(frozen=True)
class Status:
    path: Path
    exists: bool
    entries: int
    conversations: int
    bytes: int
    schema: int


def status(path: Path | None = None) -> Status:
    """What the log holds; a missing database is an empty one (and is not created)."""
    path = path or log_path()
    if not path.exists():
        return Status(path, False, 0, 0, 0, VERSION)
    with opened(path) as conn:
        entries, conversations = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT conversation_id) FROM responses"
        ).fetchone()
        return Status(
            path, True, int(entries), int(conversations), disk_size(path), version_of(conn)
        )
