"""What `/set` changes: the options table's chat settings, checked the same way whether
typed or read back from a saved chat."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from llmcli.chat.suggest import did_you_mean
from llmcli.config import options_table
from llmcli.config.options_table import Option
from llmcli.engine.types import Sampling


class SettingError(ValueError):
    """A `/set` value, or a setting in a file, that is out of range."""


# What `/set` changes, and what a chat file keeps: the options table's chat settings,
# by their `/set` names.
SETTINGS: dict[str, Option] = options_table.SET


def describe(setting: Option) -> str:
    """The values a setting takes, e.g. "a number from 0 to 1"."""
    low = setting.minimum if setting.minimum is not None else 0
    high = setting.maximum
    span = f"{low:g} to {high:g}" if high is not None else f"{low:g} or more"
    what = "a whole number" if setting.kind is int else "a number"
    extra = " or 'none'" if setting.optional else ""
    return f"{what} from {span}{extra}"


# Words that, in place of a number, leave the choice to the engine.
NONE_WORDS = ("none", "off", "random", "default")


def setting_name(typed: str) -> str:
    """`top-p`, `Top_P` and `top_p` all name the same setting."""
    return typed.strip().lower().replace("-", "_")


def check_setting(setting: Option, value: object) -> int | float | None:
    """A value from `/set` (text) or from a file (JSON), checked against the range."""
    if value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS):
        if setting.optional:
            return None
        raise SettingError(f"{setting.set_name} needs {describe(setting)}")
    number: int | float
    if isinstance(value, str):
        try:
            number = float(value.strip()) if setting.kind is float else int(value.strip())
        except ValueError:
            raise SettingError(
                f"{setting.set_name} must be {describe(setting)}, not {value.strip()!r}"
            ) from None
    elif (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (setting.kind is int and not float(value).is_integer())
    ):
        raise SettingError(f"{setting.set_name} must be {describe(setting)}, not {value!r}")
    else:
        number = float(value) if setting.kind is float else int(value)
    if (
        not math.isfinite(number)
        or (setting.minimum is not None and number < setting.minimum)
        or (setting.maximum is not None and number > setting.maximum)
    ):
        raise SettingError(f"{setting.set_name} must be {describe(setting)}, not {value}")
    return number


def apply_setting(sampling: Sampling, name: str, value: object) -> Sampling:
    key = setting_name(name)
    setting = SETTINGS.get(key)
    if setting is None:
        raise SettingError(f"unknown setting {name!r}{did_you_mean(key, SETTINGS)}")
    changes: dict[str, Any] = {setting.name: check_setting(setting, value)}
    return dataclasses.replace(sampling, **changes)


def settings_dict(sampling: Sampling) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(sampling, s.name) for name, s in SETTINGS.items()}
    values["stop"] = list(sampling.stop)
    return values


def format_settings(sampling: Sampling) -> str:
    parts = []
    for name, setting in SETTINGS.items():
        value = getattr(sampling, setting.name)
        parts.append(f"{name} {shown(value)}")
    if sampling.stop:
        parts.append("stop " + ", ".join(repr(s) for s in sampling.stop))
    return " · ".join(parts)


def shown(value: float | None) -> str:
    """A setting's value as `/set` shows it."""
    return "none" if value is None else f"{value:g}"
