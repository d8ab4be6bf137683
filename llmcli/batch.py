"""Batch input: one prompt per line, or JSON lines with a prompt and per-item settings.

Pure: no terminal, no engine. Bad lines become items that carry their error, so one
broken line never stops the rest of a batch.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from llmcli.config.options_table import BATCH
from llmcli.engine.types import Sampling

# Besides the sampling fields of the options table (`options_table.BATCH`).
_KNOWN = {"prompt", "system", "id", "stop", *BATCH}


@dataclass(frozen=True)
class BatchItem:
    index: int
    prompt: str = ""
    system: str | None = None
    id: Any = None
    sampling: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def read_items(lines: Iterable[str]) -> Iterator[BatchItem]:
    """Items in input order; blank lines are skipped."""
    index = 0
    for line in lines:
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        yield parse_line(index, text)
        index += 1


def parse_line(index: int, text: str) -> BatchItem:
    if not text.lstrip().startswith("{"):
        return BatchItem(index=index, prompt=text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return BatchItem(index=index, error=f"invalid JSON line: {exc.msg} at column {exc.colno}")
    if not isinstance(data, dict):
        return BatchItem(index=index, error="a JSON line must be an object")
    item_id = data.get("id")
    try:
        return BatchItem(
            index=index,
            prompt=_text(data, "prompt", required=True) or "",
            system=_text(data, "system"),
            id=item_id,
            sampling=_sampling_fields(data),
        )
    except ValueError as exc:
        return BatchItem(index=index, id=item_id, error=str(exc))


def _text(data: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ValueError(f'missing "{key}"')
        return None
    if not isinstance(value, str):
        raise ValueError(f'"{key}" must be a string')
    return value


def _sampling_fields(data: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for key, option in BATCH.items():
        if key not in data:
            continue
        value = data[key]
        kind, low, high = option.kind, option.minimum, option.maximum
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f'"{key}" must be a number')
        if kind is int and value != int(value):
            raise ValueError(f'"{key}" must be a whole number')
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"between {low} and {high}"
            raise ValueError(f'"{key}" must be {bounds}, not {value}')
        out[option.name] = kind(value)
    if "stop" in data:
        stop = data["stop"]
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise ValueError('"stop" must be a string or a list of strings')
        out["stop"] = tuple(stop)
    return out


def item_sampling(base: Sampling, item: BatchItem) -> Sampling:
    return dataclasses.replace(base, **item.sampling)
