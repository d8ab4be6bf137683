"""The log's tables, and the migrations that bring any earlier database up to date.

`PRAGMA user_version` holds the number of migrations applied; each runs once, in one
transaction with the version bump, so an interrupted upgrade leaves the old version whole.
Migrations are only ever appended: a database written by any earlier llmcli upgrades.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: answers and the conversations they belong to.
    """
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        created REAL NOT NULL,
        command TEXT NOT NULL,
        model TEXT NOT NULL,
        model_digest TEXT,
        system TEXT,
        prompt TEXT NOT NULL,
        answer TEXT NOT NULL,
        reasoning TEXT,
        options TEXT NOT NULL DEFAULT '{}',
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        ttft_s REAL,
        duration_s REAL,
        finish_reason TEXT
    );
    CREATE INDEX responses_conversation ON responses (conversation_id, created);
    CREATE INDEX responses_created ON responses (created);
    CREATE INDEX responses_model ON responses (model, created);
    """,
    # 2: full-text search over prompts, answers and reasoning (FTS5, kept by triggers).
    """
    CREATE VIRTUAL TABLE responses_fts USING fts5(
        prompt, answer, reasoning, system, content='responses', content_rowid='rowid'
    );
    INSERT INTO responses_fts (rowid, prompt, answer, reasoning, system)
        SELECT rowid, prompt, answer, reasoning, system FROM responses;
    CREATE TRIGGER responses_ai AFTER INSERT ON responses BEGIN
        INSERT INTO responses_fts (rowid, prompt, answer, reasoning, system)
        VALUES (new.rowid, new.prompt, new.answer, new.reasoning, new.system);
    END;
    CREATE TRIGGER responses_ad AFTER DELETE ON responses BEGIN
        INSERT INTO responses_fts (responses_fts, rowid, prompt, answer, reasoning, system)
        VALUES ('delete', old.rowid, old.prompt, old.answer, old.reasoning, old.system);
    END;
    """,
)

VERSION = len(MIGRATIONS)


def version_of(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, *, upto: int = VERSION) -> int:
    """Apply the migrations the database lacks, up to `upto` (which tests lower to build
    an earlier version); the number applied. `conn` is in autocommit mode."""
    applied = 0
    while version_of(conn) < upto:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another process may have just upgraded it.
            current = version_of(conn)
            if current >= upto or current >= VERSION:
                conn.execute("COMMIT")
                break
            for statement in _statements(MIGRATIONS[current]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {current + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied += 1
    return applied


def _statements(script: str) -> list[str]:
    """The script's statements, one by one (a trigger's body keeps its semicolons)."""
    out: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"an incomplete statement in a migration: {pending.strip()[:60]}")
    return out
