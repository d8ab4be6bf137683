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
