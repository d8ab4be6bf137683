"""Whether an answer is logged: the command line, then LLMCLI_LOG, then the config
file's `log` key (which `llmcli logs on|off` sets), then on."""

from __future__ import annotations

import os

ENV = "LLMCLI_LOG"
_OFF = {"0", "false", "no", "off"}
_ON = {"1", "true", "yes", "on"}


def from_env() -> bool | None:
    value = os.environ.get(ENV, "").strip().lower()
    if value in _OFF:
        return False
    if value in _ON:
        return True
    return None


def enabled(value: bool, *, given: bool) -> bool:
    """`value` is the command's `--log/--no-log` (the config's `log` when not `given` on
    the command line)."""
    if given:
        return value
    env = from_env()
    return value if env is None else env
