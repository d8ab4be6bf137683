"""Click's classes, as Typer ships them.

Typer 0.28 vendors Click as the private `typer._click` and does not depend on the
`click` distribution: a `click.Command` is not the class of the commands Typer builds.
Typer re-exports `Context` but not `Command` or the shell-completion protocol, so the
private module is imported here, once, and nowhere else (tests/test_import_rules.py).
"""

from typer._click import Command, Context
from typer._click.exceptions import NoArgsIsHelpError
from typer._click.shell_completion import CompletionItem, ShellComplete, split_arg_string

__all__ = [
    "Command",
    "CompletionItem",
    "Context",
    "NoArgsIsHelpError",
    "ShellComplete",
    "split_arg_string",
]
