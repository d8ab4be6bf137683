"""A small TOML writer for the config file: tables, scalars and arrays of scalars.

Enough for everything `llmcli config set` writes and for anything a user adds by hand
that `tomllib` reads back as plain data; arrays of tables are refused rather than
written wrongly. Comments are not preserved (the parser does not keep them).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dumps(doc: Mapping[str, Any]) -> str:
    lines: list[str] = []
    _table_body([], doc, lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table_body(path: list[str], table: Mapping[str, Any], lines: list[str]) -> None:
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    if path and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    for key, value in scalars:
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables:
        _table_body([*path, key], value, lines)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    # A JSON string is a valid TOML basic string, except that TOML also forbids DEL.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list):
        if any(isinstance(item, Mapping) for item in value):
            raise ValueError("arrays of tables cannot be rewritten; edit the file by hand")
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise ValueError(f"cannot write a {type(value).__name__} to TOML")
