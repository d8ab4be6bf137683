"""What went wrong with the log database, in the user's words."""

from __future__ import annotations

import sqlite3

from llmcli.errors import LlmcliError


class LogError(LlmcliError):
    """The log database cannot be read or written."""


def reason(exc: BaseException) -> str:
    """Why the log could not be used, as a clause for one line on stderr."""
    text = str(exc)
    if isinstance(exc, OSError):
        return f"cannot use the log database: {exc.strerror or text}"
    if "locked" in text or "busy" in text:
        return "the log database is locked by another program"
    if "full" in text:
        return "the disk is full"
    if "readonly" in text or "read-only" in text:
        return "the log database is read-only"
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return "the log database is damaged (move it away; `llmcli logs path` says where)"
    if "unable to open" in text:
        return "cannot open the log database"
    return f"the log database failed: {text}"


FAILURES = (sqlite3.Error, OSError)
