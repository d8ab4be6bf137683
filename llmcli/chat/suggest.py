""" "Did you mean ...?" for a mistyped command or setting name."""

from __future__ import annotations

import difflib
from collections.abc import Mapping


def did_you_mean(typed: str, names: Mapping[str, object], prefix: str = "") -> str:
    """A suggestion to append to an error ("; did you mean /save?"), or ""."""
    starts = sorted(n for n in names if n.startswith(typed)) if typed else []
    close = starts or difflib.get_close_matches(typed, list(names), n=1, cutoff=0.5)
    if not close:
        return ""
    if len(close) > 1:
        return "; did you mean " + " or ".join(f"{prefix}{n}" for n in close[:3]) + "?"
    return f"; did you mean {prefix}{close[0]}?"
