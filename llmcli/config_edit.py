"""Changing the config file: `llmcli config set|unset KEY [VALUE]`.

Keys, as typed on the command line:

    model                         the default model
    temperature, top_p, ctx, ...  an option's default (see `config.OPTIONS`)
    models.<MODEL>.<option>       an option's default for one model, e.g.
                                  models.qwen2.5:1.5b.temperature (MODEL may contain dots;
                                  the option is what follows the last one)
    aliases.<NAME>                a name of your own for a model

Pure functions on the parsed document, plus `save()`; model names are checked by the
caller, which owns the file system and the reference parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmcli import config
from llmcli.atomic import write_atomic
from llmcli.errors import ConfigError, UsageError
from llmcli.toml_writer import dumps

KeyKind = Literal["model", "option", "model_option", "alias"]


@dataclass(frozen=True)
class Key:
    kind: KeyKind
    path: tuple[str, ...]  # where it lives in the TOML document
    option: str | None = None  # for "option" and "model_option"

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def valid_keys() -> str:
    """For error messages: what may be set."""
    return "model, " + ", ".join(config.OPTIONS) + ", models.<MODEL>.<option>, aliases.<NAME>"


def parse_key(text: str) -> Key:
    key = text.strip()
    if key == "model":
        return Key("model", ("model",))
    if config.option_key(key) in config.OPTIONS:
        name = config.option_key(key)
        return Key("option", (name,), name)
    if key.startswith("models."):
        ref, dot, option = key[len("models.") :].rpartition(".")
        name = config.option_key(option)
        if not dot or not ref or name not in config.OPTIONS:
            raise UsageError(
                f"invalid key {text!r}",
                hint="per-model keys look like models.qwen2.5:1.5b.temperature",
            )
        return Key("model_option", ("models", ref, name), name)
    if key.startswith("aliases."):
        alias = key[len("aliases.") :]
        try:
            config.check_alias_name(alias)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return Key("alias", ("aliases", alias))
    raise UsageError(f"unknown config key {text!r}", hint=f"valid keys: {valid_keys()}")


def coerce_value(key: Key, text: str) -> config.OptionValue:
    if key.option is not None:
        try:
            return config.coerce_option(key.option, text)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    value = text.strip()
    if not value:
        raise UsageError(f"{key.dotted} needs a model name")
    return value


def with_value(doc: dict[str, Any], key: Key, value: object) -> dict[str, Any]:
    """A copy of `doc` with `key` set to `value`, creating tables as needed."""
    new = _copy(doc)
    table = new
    for part in key.path[:-1]:
        child = table.get(part)
        if not isinstance(child, dict):
            child = {}
            table[part] = child
        table = child
    table[key.path[-1]] = value
    return new


def without_value(doc: dict[str, Any], key: Key) -> tuple[dict[str, Any], bool]:
    """A copy of `doc` without `key` (empty tables it leaves are dropped), and whether it
    was there."""
    new = _copy(doc)
    parents: list[dict[str, Any]] = [new]
    for part in key.path[:-1]:
        child = parents[-1].get(part)
        if not isinstance(child, dict):
            return new, False
        parents.append(child)
    if key.path[-1] not in parents[-1]:
        return new, False
    del parents[-1][key.path[-1]]
    for depth in range(len(parents) - 1, 0, -1):
        if not parents[depth]:
            del parents[depth - 1][key.path[depth - 1]]
    return new, True


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in doc.items()}


def save(path: Path, doc: dict[str, Any]) -> None:
    """Write the whole document atomically: a crash never leaves half a config file."""
    try:
        text = dumps(doc)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    config.parse_settings(doc, path)  # never write a file that would not load
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise ConfigError(f"cannot write config file {path}: {exc.strerror}") from None
