"""`llmcli cache`: the on-disk prompt cache — what it holds, and clearing it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmcli import terminal
from llmcli.errors import UsageError
from llmcli.humanize import format_bytes
from llmcli.ui import console

EPILOG = """\
Examples:

  llmcli cache

  llmcli cache --json | jq .bytes

  llmcli cache clear --yes
"""

app = typer.Typer(
    name="cache",
    help="Show or clear the prompt cache: saved states of long prompts and of chat "
    "template preambles, so that later runs starting with the same text skip evaluating it.",
    epilog=EPILOG,
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app)


@app.callback()
def show(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show where the prompt cache is, how many entries it holds and their size."""
    if ctx.invoked_subcommand is not None:
        return
    from llmcli.prompt_cache_files import max_bytes_from_env, prompt_cache_dir, usage

    root = prompt_cache_dir()
    held = usage(root)
    info: dict[str, Any] = {
        "path": str(root),
        "entries": held.entries,
        "models": held.models,
        "bytes": held.bytes,
        "max_bytes": max_bytes_from_env(),
    }
    if json_out:
        console.emit_json(info)
        return
    console.emit_text(
        f"prompt cache: {info['path']}\n"
        f"{info['entries']} entries for {info['models']} model(s), "
        f"{format_bytes(info['bytes'])} of at most {format_bytes(info['max_bytes'])}"
    )


@app.command("clear")
def clear(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every saved prompt state."""
    from llmcli.prompt_cache_files import clear as clear_cache
    from llmcli.prompt_cache_files import prompt_cache_dir

    root = prompt_cache_dir()
    if not yes:
        if not terminal.current().stdin_isatty:
            raise UsageError("refusing to clear the prompt cache without --yes")
        if not typer.confirm(f"Delete every saved prompt state in {root}?", err=True):
            raise typer.Exit(1)
    count, size = clear_cache(root)
    console.notice(f"deleted {count} entries, {format_bytes(size)} freed")
