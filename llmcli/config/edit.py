"""Changing the config file: `llmcli config set|unset KEY [VALUE]`.

Keys, as typed on the command line:

    model                         the default model
    temperature, top_p, ctx, ...  an option's default (see `config.OPTIONS`)
    models.<MODEL>.<option>       an option's default for one model, e.g.
                                  models.qwen2.5:1.5b.temperature (MODEL may contain dots;
                                  the option is what follows the last one)
    aliases.<NAME>                a name of your own for a model

The file is edited, not rewritten: tomlkit keeps the user's comments, blank lines and
order. It is imported only here, when a setting changes; reading the config on every
start stays with the faster `tomllib`. Model names are checked by the caller, which owns
the reference parser.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from llmcli import config
from llmcli.atomic import write_atomic
from llmcli.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from tomlkit import TOMLDocument
    from tomlkit.items import Table

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


def load(path: Path) -> TOMLDocument:
    """The file as an editable document (empty when there is none), after checking that
    its settings load: a file with errors in it is not rewritten."""
    import tomlkit

    # Parsed with `config`'s reader first, for its errors that name the line.
    config.parse_settings(config.read_document(path), path)
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return tomlkit.document()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def with_value(doc: TOMLDocument, key: Key, value: object) -> TOMLDocument:
    """A copy of `doc` with `key` set to `value`, creating tables as needed."""
    import tomlkit

    new = _copy(doc)
    table: dict[str, Any] = new
    nested: Table | None = None
    for depth, part in enumerate(key.path[:-1]):
        child = table.get(part)
        if not isinstance(child, dict):
            # `[models."qwen2.5:1.5b"]` alone, without an empty `[models]` above it.
            child = tomlkit.table(is_super_table=depth + 2 < len(key.path))
            if table is not new:
                nested = child
            table[part] = child
        table = child
    table[key.path[-1]] = value
    if nested is not None:
        # A table added beside others keeps the blank line that separates them.
        nested.add(tomlkit.nl())
    return new


def without_value(doc: TOMLDocument, key: Key) -> tuple[TOMLDocument, bool]:
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


def _copy(doc: TOMLDocument) -> TOMLDocument:
    import tomlkit

    return tomlkit.parse(doc.as_string())


def save(path: Path, doc: TOMLDocument) -> None:
    """Write the document atomically: a crash never leaves half a config file."""
    text = doc.as_string()
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    config.parse_settings(tomllib.loads(text), path)  # never write a file that would not load
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise ConfigError(f"cannot write config file {path}: {exc.strerror}") from None
