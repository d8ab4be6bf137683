"""The same flag means the same thing in every command: walks every option of every
command through the click app that `llmcli` runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import typer
from typer._click import Command, Context
from typer.core import TyperGroup, TyperOption

from llmcli.cli import app


def commands(command: Command, path: str = "llmcli") -> Iterator[tuple[str, Command]]:
    """Every command and group, hidden ones too, with its full name, the root included."""
    yield path, command
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from commands(sub, f"{path} {name}")


def root() -> TyperGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return group


def test_every_short_flag_has_one_long_name_across_commands() -> None:
    # short flag -> its long name -> the commands that declare that pair
    meanings: defaultdict[str, defaultdict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, command in commands(root()):
        for param in command.get_params(Context(command)):
            if not isinstance(param, TyperOption):
                continue
            names = [*param.opts, *param.secondary_opts]
            longs = [o for o in names if o.startswith("--")]
            for short in (o for o in names if not o.startswith("--")):
                meanings[short][longs[0] if longs else "(none)"].append(name)
    clashes = {short: dict(longs) for short, longs in meanings.items() if len(longs) > 1}
    assert clashes == {}
    assert set(meanings["-n"]) == {"--max-tokens"}  # the walk did see the commands


def parsed(*args: str) -> dict[str, object]:
    """The parameters click makes of `llmcli ARGS`, without running the command."""
    command = root().commands[args[0]]
    return command.make_context(args[0], list(args[1:])).params


def test_n_is_tokens_to_generate_in_run_and_bench() -> None:
    assert parsed("run", "-n", "16", "Hi")["max_tokens"] == 16
    assert parsed("bench", "-n", "16")["n_gen"] == 16
    # The older spellings still work.
    assert parsed("bench", "--n-gen", "8")["n_gen"] == 8
    assert parsed("bench", "-g", "4")["n_gen"] == 4
