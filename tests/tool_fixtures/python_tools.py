"""Tools for the tests of `run --tool-file`: one that returns, one that raises, one
that hangs, one that leaves a mark on disk (to prove whether it ran)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"]) -> str:
    """The weather in a city now."""
    return f"Sunny and 21 degrees {unit} in {city}"


def explode(reason: str) -> str:
    """A tool that always fails."""
    raise RuntimeError(f"boom ({len(reason)} characters of reason)")


def hang(seconds: int) -> str:
    """A tool that never finishes."""
    if "TOOL_PID" in os.environ:  # where it runs, for the test to look for it after
        Path(os.environ["TOOL_PID"]).write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(3600)
    return "never"


def record(note: str) -> str:
    """Writes the note into the file that $TOOL_MARK names."""
    Path(os.environ["TOOL_MARK"]).write_text(note, encoding="utf-8")
    return "recorded"


def helper(value):  # type: ignore[no-untyped-def]
    return value
