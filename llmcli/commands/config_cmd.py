"""`llmcli config path|show|set|unset`: the config file (defaults, per-model options,
aliases)."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from llmcli import config
from llmcli.config import edit as config_edit
from llmcli.ui import console

EPILOG = """\
Precedence, highest first: command-line option > environment variable > per-model
config ([models."<name>"]) > config file > built-in default.

Examples:

  llmcli config set model qwen2.5:3b

  llmcli config set temperature 0.3

  llmcli config set models.smollm2:135m.temperature 0

  llmcli config set aliases.work bartowski/Llama-3.2-3B-Instruct-GGUF:Q5_K_M

  llmcli config unset temperature

  llmcli config show --json | jq .defaults
"""

config_app = typer.Typer(
    name="config",
    help="Show or change the config file: default model, option defaults, aliases.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app)


@config_app.command(
    "path", epilog='Examples:\n\n  llmcli config path\n\n  $EDITOR "$(llmcli config path)"'
)
def path_command() -> None:
    """Print where the config file is (or would be): $LLMCLI_CONFIG, else the
    platform's config directory."""
    console.emit_text(str(config.config_path()))


@config_app.command(
    "show", epilog="Examples:\n\n  llmcli config show\n\n  llmcli config show --json"
)
def show_command(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the checked settings as one JSON object.")
    ] = False,
) -> None:
    """Print the config file, after checking it (errors name the line)."""
    settings = config.load()
    for warning in settings.warnings:
        console.notice(f"warning: {warning}")
    if json_out:
        console.emit_json(_as_json(settings))
        return
    if not settings.exists:
        console.notice(f"no config file at {settings.path}; built-in defaults are in use")
        return
    console.emit_text(settings.path.read_text(encoding="utf-8"))


def _as_json(settings: config.Settings) -> dict[str, Any]:
    return {
        "path": str(settings.path),
        "exists": settings.exists,
        "model": settings.model,
        "defaults": settings.defaults,
        "models": settings.models,
        "aliases": settings.aliases,
        "rpc": settings.rpc,
    }


@config_app.command(
    "set",
    # `config set gpu_layers -1`: a negative number is a value, not an option.
    context_settings={"ignore_unknown_options": True},
    epilog="Keys: model, "
    + ", ".join(config.OPTIONS)
    + ", models.<MODEL>.<option>, aliases.<NAME>.\n\n"
    "The file keeps its comments and layout.\n\n"
    "Examples:\n\n  llmcli config set temperature 0.3\n\n"
    "  llmcli config set models.qwen2.5:1.5b.ctx 8192\n\n"
    "  llmcli config set aliases.work owner/repo:Q5_K_M",
)
def set_command(
    key: Annotated[str, typer.Argument(help="What to set (see below).", show_default=False)],
    value: Annotated[str, typer.Argument(help="Its new value.", show_default=False)],
) -> None:
    """Set a default: the model, an option (for all models or one), or an alias."""
    parsed = config_edit.parse_key(key)
    new_value = config_edit.coerce_value(parsed, value)
    if parsed.kind in ("model", "alias"):
        _check_model(str(new_value), user_aliases=parsed.kind == "model")
    elif parsed.kind == "model_option":
        _check_model(parsed.path[1], user_aliases=True)
    path = config.config_path()
    doc = config_edit.load(path)
    config_edit.save(path, config_edit.with_value(doc, parsed, new_value))
    console.notice(f"{parsed.dotted} = {new_value} (in {path})")


@config_app.command(
    "unset", epilog="Examples:\n\n  llmcli config unset temperature\n\n  llmcli config unset model"
)
def unset_command(
    key: Annotated[str, typer.Argument(help="What to remove.", show_default=False)],
) -> None:
    """Remove a setting, so the next one in line applies again."""
    parsed = config_edit.parse_key(key)
    path = config.config_path()
    new, found = config_edit.without_value(config_edit.load(path), parsed)
    if not found:
        console.notice(f"{parsed.dotted} was not set")
        return
    config_edit.save(path, new)
    console.notice(f"removed {parsed.dotted} (from {path})")


def _check_model(text: str, *, user_aliases: bool) -> None:
    """A model name must parse now rather than fail later in every command; an alias's
    target is read without the other aliases (aliases do not chain)."""
    from llmcli import model_refs
    from llmcli.resolve import resolver

    if user_aliases:
        resolver.parse(text)
    else:
        model_refs.parse_ref(text, exists=lambda p: os.path.exists(os.path.expanduser(p)))
