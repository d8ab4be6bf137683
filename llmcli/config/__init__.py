"""Paths, environment variables and the config file, resolved in one place.

Kept free of heavy imports: it is read on every start, including shell completion.

    options_table  every generation option, declared once (read here for the defaults)
    edit           changing the config file (`llmcli config set|unset`); not imported here
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcli.config import options_table
from llmcli.config.options_table import Option
from llmcli.errors import ConfigError

ENV_MODEL = "LLMCLI_MODEL"
ENV_DEBUG = "LLMCLI_DEBUG"


def debug_enabled() -> bool:
    """True when the user asked for tracebacks instead of one-line errors."""
    return os.environ.get(ENV_DEBUG, "").strip().lower() not in ("", "0", "false", "no")


def env_model() -> str | None:
    value = os.environ.get(ENV_MODEL, "").strip()
    return value or None


def usable_cores() -> int:
    """Cores this process may run on: respects CPU affinity and cgroup quotas,
    unlike os.cpu_count()."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity API
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, quota)
    return max(1, cores)


def _cgroup_cpu_quota() -> int | None:
    """The cgroup v2 CPU limit in whole cores, if one is set."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except OSError:
        return None
    if len(text) != 2 or text[0] == "max":
        return None
    try:
        quota, period = int(text[0]), int(text[1])
    except ValueError:
        return None
    return max(1, quota // period) if period > 0 else None


def user_data_dir() -> Path:
    """Where llmcli keeps what it writes for the user (chat history, conversations)."""
    override = os.environ.get("LLMCLI_HOME")
    if override:
        return Path(override)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "llmcli"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llmcli"


# --------------------------------------------------------------------------- config file


def user_cache_dir() -> Path:
    """Where llmcli keeps what it can recompute (model cards, prompt states).
    Inside LLMCLI_HOME when that is set."""
    override = os.environ.get("LLMCLI_HOME")
    if override:
        return Path(override) / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "llmcli"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmcli"


ENV_CONFIG = "LLMCLI_CONFIG"


def config_path() -> Path:
    """The config file: $LLMCLI_CONFIG, else `llmcli/config.toml` in the platform's
    config directory (XDG on Linux, Application Support on macOS, APPDATA on Windows)."""
    override = os.environ.get(ENV_CONFIG, "").strip()
    if override:
        return Path(override).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "llmcli" / "config.toml"
    if os.name == "nt" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "llmcli" / "config.toml"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "llmcli" / "config.toml"


# The options the config file may give defaults for, keyed by the options' parameter
# names (`--top-p` -> top_p), which is also what the commands' default maps are keyed by.
OPTIONS: dict[str, Option] = options_table.CONFIG

Number = int | float
# What an option's default may be in the config file.
OptionValue = options_table.OptionValue
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_ALIAS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]*$")


def option_key(name: str) -> str:
    """`top-p` and `top_p` both name the option `top_p`."""
    return name.strip().replace("-", "_").lower()


def coerce_option(name: str, value: object) -> OptionValue:
    """`value` as the type the option takes, within its bounds; ValueError otherwise.

    Accepts what TOML gives (int, float, bool, text) and what `config set` gives (text)."""
    spec = OPTIONS[name]
    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError(f"{name} must be true or false, not {value!r}")
    if spec.kind is str and not spec.choices:
        # Free text (a file's path, `lora`): kept as written, case included.
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a file's path, not {value!r}")
        return value.strip()
    if spec.kind is str:
        word = str(value).strip().lower() if isinstance(value, str) else ""
        if word not in spec.choices:
            raise ValueError(f"{name} must be one of {', '.join(spec.choices)}, not {value!r}")
        return word
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not {str(value).lower()}")
    number: Number
    try:
        if not isinstance(value, (int, float, str)):
            raise TypeError
        if spec.kind is float:
            number = float(value)
        elif isinstance(value, float) and not value.is_integer():
            raise ValueError
        else:
            number = int(value)
    except (TypeError, ValueError):
        kind = "a whole number" if spec.kind is int else "a number"
        raise ValueError(f"{name} must be {kind}, not {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if spec.minimum is not None and number < spec.minimum:
        raise ValueError(f"{name} must be at least {spec.minimum:g}, not {number:g}")
    if spec.maximum is not None and number > spec.maximum:
        raise ValueError(f"{name} must be at most {spec.maximum:g}, not {number:g}")
    return number


def check_alias_name(name: str) -> None:
    """Raise ValueError for an alias name that could be mistaken for a path or repo."""
    if not _ALIAS_NAME.match(name) or name.lower().endswith(".gguf"):
        raise ValueError(
            f"invalid alias name {name!r}: use letters, digits and . _ : + - "
            "(no '/', not ending in .gguf)"
        )


@dataclass(frozen=True)
class Settings:
    """The config file, checked: what every command may take its defaults from."""

    path: Path
    exists: bool = False
    model: str | None = None
    defaults: dict[str, OptionValue] = field(default_factory=dict)
    models: dict[str, dict[str, OptionValue]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # lower-case name -> target
    warnings: tuple[str, ...] = ()
    # `llmcli serve`'s API key (LLMCLI_API_KEY and --api-key take precedence).
    api_key: str | None = None
    # RPC workers to split models across, "host:port,..." (--rpc and LLMCLI_RPC first).
    rpc: str | None = None
    # `llmcli serve`: Host names and web page origins allowed besides the built-in ones
    # (added to --allowed-host and --cors-origin).
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()


def read_document(path: Path) -> dict[str, Any]:
    """The parsed TOML file ({} when there is none); ConfigError with the line when it
    does not parse."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        doc: dict[str, Any] = tomllib.loads(data.decode("utf-8"))
        return doc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_message(path, exc)) from None


def _toml_message(path: Path, exc: ValueError) -> str:
    """`file:line:column: message`, the way compilers report, so editors can jump there."""
    text = str(exc)
    where = re.search(r"\s*\(at line (\d+), column (\d+)\)$", text)
    if where is None:
        return f"{path}: invalid TOML: {text}"
    message = text[: where.start()]
    return f"{path}:{where.group(1)}:{where.group(2)}: invalid TOML: {message}"


def parse_settings(doc: dict[str, Any], path: Path, *, exists: bool = True) -> Settings:
    """Check a parsed document: wrong types are errors (ConfigError), unknown keys are
    warnings, so that a newer config file still works with an older llmcli."""
    warnings: list[str] = []
    defaults: dict[str, OptionValue] = {}
    models: dict[str, dict[str, OptionValue]] = {}
    user_aliases: dict[str, str] = {}
    model: str | None = None
    api_key: str | None = None
    rpc: str | None = None
    serve_lists: dict[str, tuple[str, ...]] = {}

    def bad(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: {problem}")

    for key, value in doc.items():
        name = option_key(key)
        if key == "model":
            if not isinstance(value, str) or not value.strip():
                raise bad(key, "must be a model name (text)")
            model = value.strip()
        elif key == "api_key":
            if not isinstance(value, str) or not value.strip():
                raise bad(key, "must be text")
            api_key = value.strip()
        elif key == "rpc":
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                value = ",".join(value)
            if not isinstance(value, str) or not value.strip():
                raise bad(key, 'must be "host:port[,host:port...]" (text)')
            rpc = value.strip()
        elif key in ("allowed_hosts", "cors_origins"):
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
                raise bad(key, "must be a list of text")
            serve_lists[key] = tuple(v.strip() for v in items)
        elif name in OPTIONS:
            try:
                defaults[name] = coerce_option(name, value)
            except ValueError as exc:
                raise bad(key, str(exc)) from None
        elif key == "models" and isinstance(value, dict):
            for ref, table in value.items():
                if not isinstance(table, dict):
                    raise bad(f"models.{ref}", "must be a table of options")
                models[ref] = _model_table(path, ref, table, warnings)
        elif key == "aliases" and isinstance(value, dict):
            for alias, target in value.items():
                if not isinstance(target, str) or not target.strip():
                    raise bad(f"aliases.{alias}", "must be a model name (text)")
                try:
                    check_alias_name(alias)
                except ValueError as exc:
                    warnings.append(f"{path}: {exc} (ignored)")
                    continue
                user_aliases[alias.lower()] = target.strip()
        else:
            warnings.append(f"{path}: unknown key {key!r} (ignored)")
    return Settings(
        path,
        exists,
        model,
        defaults,
        models,
        user_aliases,
        tuple(warnings),
        api_key,
        rpc,
        serve_lists.get("allowed_hosts", ()),
        serve_lists.get("cors_origins", ()),
    )


def _model_table(
    path: Path, ref: str, table: dict[str, Any], warnings: list[str]
) -> dict[str, OptionValue]:
    values: dict[str, OptionValue] = {}
    for key, value in table.items():
        name = option_key(key)
        if name not in OPTIONS:
            warnings.append(f"{path}: unknown key {key!r} in models.{ref!r} (ignored)")
            continue
        try:
            values[name] = coerce_option(name, value)
        except ValueError as exc:
            raise ConfigError(f"{path}: models.{ref!r}: {exc}") from None
    return values


_cache: dict[tuple[str, int, int], Settings] = {}


def load() -> Settings:
    """The config file in use, parsed and checked; read again only when it changes."""
    path = config_path()
    try:
        st = path.stat()
        stamp = (str(path), st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (str(path), -1, -1)
    cached = _cache.get(stamp)
    if cached is None:
        doc = read_document(path)
        cached = parse_settings(doc, path, exists=stamp[1] != -1)
        _cache.clear()
        _cache[stamp] = cached
    return cached
