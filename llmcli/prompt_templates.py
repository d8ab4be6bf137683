"""Prompt templates: a reusable system prompt, a prompt around the user's input, named
variables with defaults, and optionally a model, sampling defaults and a JSON schema.

A template is a TOML file. Built-in ones live here; the user's own are `NAME.toml` in
the `templates` folder beside the config file, and one there with a built-in's name
replaces it. Variables are written `{{name}}`; `{{input}}` is the prompt (argument,
stdin, a batch line, a chat message). Pure: no engine, no terminal.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcli import config
from llmcli.errors import ConfigError, UsageError

INPUT = "input"
_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FIELDS = {"description", "system", "prompt", "model", "schema", "vars", "options"}

BUILTIN: dict[str, str] = {
    "summarize": '''\
description = "Summarize the input briefly and faithfully"
system = "You summarize text faithfully. You add nothing that is not in the text."
prompt = """Summarize the following text in {{length}}.

{{input}}"""

[vars]
length = "three short bullet points"

[options]
temperature = 0.3
''',
    "translate": '''\
description = "Translate the input (--var lang=French)"
system = "You are a translator. Reply with the translation only, nothing else."
prompt = """Translate this text into {{lang}}:

{{input}}"""

[vars]
lang = "English"

[options]
temperature = 0.2
''',
    "explain": '''\
description = "Explain the input simply (--var audience=...)"
system = "You explain things clearly and concretely, with a short example when it helps."
prompt = """Explain this to {{audience}}:

{{input}}"""

[vars]
audience = "a curious newcomer"
''',
    "proofread": '''\
description = "Fix spelling and grammar; reply with the corrected text only"
system = "You are a careful copy editor. Reply with the corrected text only."
prompt = """Correct the spelling and grammar of this text, keeping its meaning and tone:

{{input}}"""

[options]
temperature = 0
''',
    "commit-message": '''\
description = "A commit message for a diff (git diff | llmcli run -t commit-message)"
system = """You write concise git commit messages: a subject line under 72 \
characters, a blank line, then a short body."""
prompt = """Write a commit message for this diff:

{{input}}"""

[options]
temperature = 0.2
''',
    "sentiment": '''\
description = "Sentiment of the input as JSON (positive, negative or neutral)"
prompt = """What is the sentiment of this text?

{{input}}"""

[options]
temperature = 0

[schema]
type = "object"
required = ["sentiment"]
properties.sentiment.enum = ["positive", "negative", "neutral"]
''',
}

# A new user template, for `llmcli templates edit NAME` when NAME is new.
SKELETON = '''\
# llmcli prompt template. {{input}} is the prompt; other {{names}} are variables.
description = "What this template does"
system = "You are a helpful assistant."
prompt = """{{input}}"""

# Variables and their defaults (--var name=value); one without a default is required.
[vars]

# Defaults for options: temperature, top_p, top_k, min_p, repeat_penalty, max_tokens,
# seed, ctx, think, reasoning_effort. The command line still wins.
[options]
'''


def templates_dir() -> Path:
    """The user's prompt templates: `templates/` beside the config file."""
    return config.config_path().parent / "templates"


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    source: str  # "built-in" or the file's path
    text: str  # the TOML as written
    prompt: str
    description: str = ""
    system: str | None = None
    # Variable -> default; None: required.
    variables: dict[str, str | None] = field(default_factory=dict)
    model: str | None = None
    # Option defaults, keyed like the commands' parameters (temperature, max_tokens...).
    options: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None

    @property
    def takes_input(self) -> bool:
        return INPUT in _names(self.prompt)

    def check(self, values: Mapping[str, str]) -> None:
        """UsageError for a variable the template does not have or one it needs."""
        unknown = sorted(set(values) - set(self.variables))
        if unknown:
            have = ", ".join(self.variables) or "none"
            raise UsageError(
                f"prompt template {self.name!r} has no variable {unknown[0]!r} "
                f"(its variables: {have})"
            )
        missing = [k for k, v in self.variables.items() if v is None and k not in values]
        if missing:
            raise UsageError(
                f"prompt template {self.name!r} needs --var {missing[0]}=VALUE "
                f"(required: {', '.join(missing)})"
            )

    def render(self, text: str | None, values: Mapping[str, str]) -> tuple[str | None, str]:
        """(system prompt, prompt) with the variables filled in and `text` as the input.
        Input given to a template without {{input}} is added after a blank line."""
        self.check(values)
        filled = {k: v or "" for k, v in self.variables.items()}
        filled.update(values)
        given = text if text is not None and text.strip() else None
        if self.takes_input and given is None:
            raise UsageError(
                f"prompt template {self.name!r} needs input: a prompt argument or stdin"
            )
        filled[INPUT] = given or ""
        prompt = _fill(self.prompt, filled)
        if not self.takes_input and given is not None:
            prompt = f"{prompt.rstrip()}\n\n{given}" if prompt.strip() else given
        system = _fill(self.system, filled) if self.system else None
        return system, prompt


def _names(text: str | None) -> list[str]:
    return _VAR.findall(text or "")


def _fill(text: str, values: Mapping[str, str]) -> str:
    """One pass: a value that itself contains {{x}} stays as written."""
    return _VAR.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def parse(name: str, text: str, source: str) -> PromptTemplate:
    """Check a template's TOML; ConfigError naming the file and the problem."""

    def bad(problem: str) -> ConfigError:
        return ConfigError(f"prompt template {source}: {problem}")

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise bad(f"invalid TOML: {exc}") from None
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise bad(f"unknown key {unknown[0]!r} (keys: {', '.join(sorted(_FIELDS))})")
    strings = {}
    for key in ("description", "system", "prompt", "model"):
        value = doc.get(key)
        if value is not None and not isinstance(value, str):
            raise bad(f"{key} must be text")
        strings[key] = value
    prompt = strings["prompt"] if strings["prompt"] is not None else "{{input}}"
    raw_vars = doc.get("vars", {})
    if not isinstance(raw_vars, dict):
        raise bad("[vars] must be a table")
    variables: dict[str, str | None] = {}
    for key, value in raw_vars.items():
        if key == INPUT:
            raise bad("'input' is the prompt itself, not a variable")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise bad(f"vars.{key} must be text")
        variables[key] = str(value)
    for used in _names(prompt) + _names(strings["system"]):
        if used != INPUT:
            variables.setdefault(used, None)
    options = _options(doc.get("options", {}), bad)
    schema = doc.get("schema")
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise bad(f"schema is not JSON: {exc.msg}") from None
    if schema is not None and not isinstance(schema, dict):
        raise bad("schema must be a table or a JSON object")
    return PromptTemplate(
        name=name,
        source=source,
        text=text,
        prompt=prompt,
        description=strings["description"] or "",
        system=strings["system"] or None,
        variables=variables,
        model=strings["model"] or None,
        options=options,
        schema=schema,
    )


def _options(raw: object, bad: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise bad("[options] must be a table")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = config.option_key(key)
        if name == "stop":
            stops = [value] if isinstance(value, str) else value
            if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
                raise bad("options.stop must be text or a list of texts")
            out[name] = stops
        elif name in config.OPTIONS:
            try:
                out[name] = config.coerce_option(name, value)
            except ValueError as exc:
                raise bad(f"options.{exc}") from None
        else:
            raise bad(f"unknown option {key!r} (options: {', '.join([*config.OPTIONS, 'stop'])})")
    return out


def user_file(name: str) -> Path:
    if not _NAME.match(name):
        raise UsageError(f"invalid prompt template name {name!r}: use letters, digits and . _ -")
    return templates_dir() / f"{name}.toml"


def user_names() -> list[str]:
    folder = templates_dir()
    try:
        return sorted(p.stem for p in folder.glob("*.toml") if _NAME.match(p.stem))
    except OSError:
        return []


def names() -> list[str]:
    return sorted({*BUILTIN, *user_names()})


def load(name: str) -> PromptTemplate:
    """The user's template of this name, else the built-in one, else a .toml file path.
    UsageError listing what exists when there is none."""
    path = Path(name).expanduser()
    if name.endswith(".toml") and path.is_file():
        return _read(path.stem, path)
    if _NAME.match(name):
        own = templates_dir() / f"{name}.toml"
        if own.is_file():
            return _read(name, own)
        if name in BUILTIN:
            return parse(name, BUILTIN[name], "built-in")
    raise UsageError(
        f"unknown prompt template {name!r}; there are: {', '.join(names())}",
        hint=f"add your own as {templates_dir() / (name + '.toml')}, "
        f"or run 'llmcli templates edit {name}'",
    )


def _read(name: str, path: Path) -> PromptTemplate:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read prompt template {path}: {why}") from None
    return parse(name, text, str(path))


def names_with_summaries() -> list[tuple[str, str]]:
    """(name, description) of every template; a broken file says so instead."""
    out: list[tuple[str, str]] = []
    for name in names():
        try:
            out.append((name, load(name).description))
        except (ConfigError, UsageError) as exc:
            out.append((name, f"(broken: {exc})"))
    return out


def parse_vars(items: Sequence[str] | None) -> dict[str, str]:
    """--var NAME=VALUE items as a dict; UsageError for one without '='."""
    values: dict[str, str] = {}
    for item in items or ():
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--var takes NAME=VALUE, not {item!r}")
        values[key.strip()] = value
    return values
