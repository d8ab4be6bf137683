"""`llmcli completion SHELL`: print the shell completion script."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from llmcli.ui import console

EPILOG = """\
Examples:

  eval "$(llmcli completion bash)"          # in ~/.bashrc

  llmcli completion zsh > "${fpath[1]}/_llmcli"

  llmcli completion fish > ~/.config/fish/completions/llmcli.fish
"""


class Shell(str, enum.Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def register(app: typer.Typer) -> None:
    app.command(
        "completion",
        help="Print the completion script for bash, zsh or fish.\n\n"
        "Completes commands, options and model names (cached models and aliases).",
        epilog=EPILOG,
    )(completion)


def completion(
    shell: Annotated[Shell, typer.Argument(help="The shell.", show_default=False)],
) -> None:
    from llmcli.completion.scripts import script

    console.emit_text(script(shell.value))
