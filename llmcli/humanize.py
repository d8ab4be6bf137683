"""Sizes and times the way people read them. Pure."""

from __future__ import annotations

import time


def format_bytes(n: int | float) -> str:
    """Decimal units, as disks and the Hub show them: 1.1 GB, 98.2 MB, 512 B."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_bytes(text: str) -> int | None:
    """A size as people type it: 8G, 16 GB, 512MB, 6.5GiB, 1000000. None if unreadable.
    K, M, G, T (with or without B) are decimal, as format_bytes writes them; KiB, MiB,
    GiB, TiB binary."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*", text.lower())
    if match is None or (match[3] and not match[2]):
        return None
    number, unit, binary = match.groups()
    scale = 1024 ** "_kmgt".index(unit) if binary else _UNITS[unit]
    return int(float(number) * scale)


def format_age(timestamp: float, *, now: float | None = None) -> str:
    """How long ago, coarsely: "just now", "5 minutes ago", "3 days ago"."""
    seconds = max(0.0, (time.time() if now is None else now) - timestamp)
    for size, unit in (
        (86400 * 365, "year"),
        (86400 * 30, "month"),
        (86400 * 7, "week"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
    ):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


_KEEP_UNITS = {"": 1, "ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_keep_alive(value: str | int | float) -> float | None:
    """How long an idle model stays loaded, as ollama takes it: seconds as a number, or
    `30s`, `5m`, `1h`, `1h30m`; 0 unloads at once; a negative value or `forever` never.
    None means never; ValueError for anything else."""
    import math
    import re

    if isinstance(value, bool):
        raise ValueError("a duration, not true or false")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("a finite number of seconds")
        return None if value < 0 else float(value)
    text = value.strip().lower()
    if text in ("forever", "never", "inf", "-1"):
        return None
    sign = -1 if text.startswith("-") else 1
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|)", text.lstrip("-"))
    if not parts or "".join(n + u for n, u in parts) != text.lstrip("-"):
        raise ValueError(f"{value!r} is no duration: use e.g. 30s, 5m, 1h, 0 or -1 (forever)")
    seconds = sum(float(n) * _KEEP_UNITS[u] for n, u in parts)
    return None if sign < 0 else seconds


def format_seconds(seconds: float) -> str:
    """A short span: 45s, 4m 12s, 2h 5m."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s" if s % 60 else f"{s // 60}m"
    return f"{s // 3600}h {s % 3600 // 60}m" if s % 3600 // 60 else f"{s // 3600}h"
