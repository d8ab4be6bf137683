"""`llmcli logs`: the answers llmcli has given, from the local answer log."""

from __future__ import annotations

import dataclasses
import re
import time
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.errors import UsageError
from llmcli.humanize import format_bytes
from llmcli.ui import console

if TYPE_CHECKING:
    from sqlite3 import Connection

    from llmcli.answer_log.entry import Entry

EPILOG = """\
Examples:

  llmcli logs                      the three latest answers

  llmcli logs --count 10 -m smollm2   the ten latest of one model

  llmcli logs -q "sky blue"        full-text search

  llmcli logs --json --count 0 | jq length

  llmcli logs rm --older-than 30d

  llmcli logs off
"""

app = typer.Typer(
    name="logs",
    help="Show, search and prune the answer log: every prompt llmcli answered, with its "
    "answer, model, options, token counts and timings, in a local SQLite database. "
    "`run -c` continues the latest conversation from it.",
    epilog=EPILOG,
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def seconds_in(text: str) -> float:
    """`30d`, `12h`, `90m`, `2w`, `45s`: a length of time."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise UsageError(f"invalid duration {text!r}: use a number and s, m, h, d or w (e.g. 30d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def since_time(text: str) -> float:
    """A duration back from now (`2h`), or a date or time (`2026-12-01`, `2026-12-01T09:30`)."""
    if _DURATION.fullmatch(text.strip().lower()):
        return time.time() - seconds_in(text)
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise UsageError(
            f"invalid --since {text!r}: give a duration (2h, 7d) or a date (2026-12-01)"
        ) from None


@app.callback()
def show(
    ctx: typer.Context,
    count: Annotated[
        int, typer.Option("--count", min=0, help="How many entries; 0: all of them.")
    ] = 3,
    query: Annotated[
        str | None, typer.Option("--query", "-q", help="Only entries with these words.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only since then: 2h, 7d, or a date.")
    ] = None,
    conversation: Annotated[
        str | None,
        typer.Option(
            "--conversation", "--cid", help="Only this conversation (an id or its start)."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Show the latest logged answers, oldest first."""
    if ctx.invoked_subcommand is not None:
        return
    from llmcli.answer_log import database

    path = database.log_path()
    entries: list[Entry] = []
    if path.exists():
        with _opened() as conn:
            cid = database.conversation_id(conn, conversation) if conversation else None
            entries = database.search(
                conn,
                database.Query(
                    limit=count or None,
                    text=query,
                    model=_model_name(model) if model else None,
                    conversation=cid,
                    since=since_time(since) if since else None,
                ),
            )
    if json_out:
        console.emit_json([_as_json(e) for e in entries])
        return
    if not entries:
        console.notice("no logged answers match" if path.exists() else "the answer log is empty")
        return
    console.emit_text("\n".join(_as_text(e) for e in entries))


@app.command("path")
def path_command() -> None:
    """Print where the answer log is."""
    from llmcli.answer_log import database

    console.emit_text(str(database.log_path()))


@app.command("status")
def status_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Say whether answers are logged, where, and how much the log holds."""
    from llmcli.answer_log import database

    held = database.status()
    on, why = _logging_state()
    info: dict[str, Any] = {
        "logging": on,
        "because": why,
        "path": str(held.path),
        "entries": held.entries,
        "conversations": held.conversations,
        "bytes": held.bytes,
        "schema": held.schema,
    }
    if json_out:
        console.emit_json(info)
        return
    console.emit_text(
        f"logging: {'on' if on else 'off'} ({why})\n"
        f"database: {held.path}\n"
        f"{held.entries} answers in {held.conversations} conversations, "
        f"{format_bytes(held.bytes)}"
    )


@app.command("on")
def on_command() -> None:
    """Log answers from now on (the config file's `log` key)."""
    _set_logging(True)


@app.command("off")
def off_command() -> None:
    """Stop logging answers (what is logged stays; `logs rm` removes it)."""
    _set_logging(False)


@app.command("rm")
def rm_command(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Entry ids (or their first characters).")
    ] = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Entries older than this: 30d, 12h...")
    ] = None,
) -> None:
    """Delete logged answers by id, or all those older than a duration."""
    from llmcli.answer_log import database

    if not ids and older_than is None:
        raise UsageError("say what to delete: entry ids, or --older-than 30d")
    for entry_id in ids or []:
        if len(entry_id) < 6 or not re.fullmatch(r"[0-9a-f]+", entry_id):
            raise UsageError(f"invalid entry id {entry_id!r}: give at least its first 6 characters")
    before = time.time() - seconds_in(older_than) if older_than is not None else None
    path = database.log_path()
    if not path.exists():
        console.notice("the answer log is empty: nothing to delete")
        return
    with _opened() as conn:
        full_ids = [database.entry_id(conn, given) for given in ids or []]
        removed = database.remove(conn, path, ids=full_ids, before=before)
    console.notice(f"deleted {removed.entries} answers, {format_bytes(removed.bytes_freed)} freed")


# -- helpers ---------------------------------------------------------------------------


def _opened() -> AbstractContextManager[Connection]:
    from llmcli.answer_log import database

    return database.opened()


def _model_name(given: str) -> str:
    """The name entries are logged under: a local file's name, else the name as given."""
    from pathlib import Path

    path = Path(given).expanduser()
    return path.name if given.endswith(".gguf") or path.is_file() else given


def _as_json(entry: Entry) -> dict[str, Any]:
    data = dataclasses.asdict(entry)
    data["created"] = _when(entry.created)
    return data


def _when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")


def _as_text(entry: Entry) -> str:
    head = (
        f"## {_when(entry.created)} · {entry.model} · {entry.command} · id {entry.id} · "
        f"conversation {entry.conversation_id}"
    )
    parts = [head, ""]
    if entry.system:
        parts += ["System:", entry.system, ""]
    parts += ["Prompt:", entry.prompt, ""]
    if entry.reasoning:
        parts += ["Thinking:", entry.reasoning, ""]
    parts += ["Answer:", entry.answer, ""]
    facts = [f"{entry.completion_tokens} tokens"] if entry.completion_tokens is not None else []
    if entry.duration_s is not None:
        facts.append(f"{entry.duration_s:.2f} s")
    if entry.finish_reason and entry.finish_reason != "stop":
        facts.append(f"ended by {entry.finish_reason}")
    if facts:
        parts += [f"({', '.join(facts)})", ""]
    return "\n".join(parts)


def _logging_state() -> tuple[bool, str]:
    from llmcli import config
    from llmcli.answer_log import switch

    env = switch.from_env()
    if env is not None:
        return env, f"{switch.ENV} is set"
    value = config.load().defaults.get("log")
    if isinstance(value, bool):
        return value, "the config file's `log` key"
    return True, "the default"


def _set_logging(on: bool) -> None:
    from llmcli import config
    from llmcli.answer_log import switch
    from llmcli.config import edit as config_edit

    key = config_edit.parse_key("log")
    path = config.config_path()
    config_edit.save(path, config_edit.with_value(config_edit.load(path), key, on))
    console.notice(
        f"answers are {'logged' if on else 'not logged'} from now on "
        f"(log = {str(on).lower()} in {path})"
    )
    if switch.from_env() is not None:
        console.notice(f"{switch.ENV} is set and takes precedence over this setting")
