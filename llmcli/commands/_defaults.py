"""Where an option's default comes from: the config file (global and per model) and the
prompt template, merged into click's default map, and which options the user typed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer
from typer.core import TyperGroup, TyperOption

from llmcli.click_api import Command
from llmcli.config import options_table

_BASE, _MODEL, _TEMPLATE = "llmcli.base_defaults", "llmcli.model", "llmcli.template"


def model_defaults(ctx: typer.Context, value: str | None) -> str | None:
    """Make the config file's options for this model (`[models."<name>"]`) this
    command's defaults.

    Runs first (the option is eager), before the other options take their values, so
    that click's own order still decides: command line > prompt template > per-model
    config > global config (the root's default map) > built-in default.
    """
    if ctx.resilient_parsing:  # shell completion: nothing is run, stay fast
        return value
    ctx.meta[_MODEL] = value
    _refresh_defaults(ctx)
    return value


def template_defaults(ctx: typer.Context, value: str | None) -> str | None:
    """Load the prompt template named by -t (eager, like -m) and make its settings this
    command's defaults, above the config file's."""
    if ctx.resilient_parsing or value is None:
        return value
    from llmcli import prompt_templates

    ctx.meta[_TEMPLATE] = prompt_templates.load(value)
    _refresh_defaults(ctx)
    return value


def loaded_template(ctx: typer.Context) -> Any:
    """The prompt template -t loaded (a PromptTemplate), or None."""
    return ctx.meta.get(_TEMPLATE)


def _refresh_defaults(ctx: typer.Context) -> None:
    """default map = global config, then this model's config, then the prompt template:
    recomputed whichever of -m and -t click handles first."""
    from llmcli.resolve import resolver

    if _BASE not in ctx.meta:
        ctx.meta[_BASE] = dict(ctx.default_map or {})
    template = ctx.meta.get(_TEMPLATE)
    ref = ctx.meta.get(_MODEL)
    if ref is None and template is not None:
        ref = template.model
    overrides = resolver.model_overrides(ref if ref is not None else resolver.default_ref())
    ctx.default_map = options_table.option_defaults(
        {p.name for p in ctx.command.params if p.name},
        config_keys(ctx.command),
        ctx.meta[_BASE],
        overrides,
        template.options if template is not None else None,
    )


def from_command_line(context: typer.Context, *names: str) -> bool:
    """True when one of these options was typed on the command line (or set through the
    environment), not taken from the config file, a prompt template or its default."""
    sources = (context.get_parameter_source(name) for name in names)
    return any(s is not None and s.name not in ("DEFAULT", "DEFAULT_MAP") for s in sources)


def config_keys(command: Command) -> set[str]:
    """The options of `command` that the config file may give defaults for: single-value
    options named like a config key (bench's `--threads` takes a list as text, and an
    int default still converts to it), and on/off flags for true/false keys."""
    from llmcli.config import OPTIONS

    return {
        p.name
        for p in command.params
        if isinstance(p, TyperOption)
        and p.name in OPTIONS
        and not p.multiple
        and (not p.is_flag or OPTIONS[p.name].kind is bool)
        and p.nargs == 1
    }


def config_default_map(group: TyperGroup, defaults: Mapping[str, object]) -> dict[str, Any]:
    """click's `default_map` for every command of `group`, from the config file's
    option defaults (click applies: command line > environment > default map >
    declared default)."""
    result: dict[str, Any] = {}
    for name, command in group.commands.items():
        values = options_table.option_defaults(
            {p.name for p in command.params if p.name}, config_keys(command), defaults
        )
        if isinstance(command, TyperGroup):
            values.update(config_default_map(command, defaults))
        if values:
            result[name] = values
    return result
