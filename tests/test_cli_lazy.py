"""A command line that names a command builds the app with that command alone: the
same command, with the same help, as in the app with all of them."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from llmcli.cli import COMMANDS, build_app, full_app


def _names(app: typer.Typer) -> list[str]:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return list(group.commands)


def test_the_table_names_every_command_of_the_app_and_nothing_else() -> None:
    assert sorted(_names(full_app())) == sorted(COMMANDS)


@pytest.mark.parametrize("module", sorted(set(COMMANDS.values())))
def test_each_module_registers_exactly_the_names_the_table_gives_it(module: str) -> None:
    by_module: defaultdict[str, set[str]] = defaultdict(set)
    for name, owner in COMMANDS.items():
        by_module[owner].add(name)
    first = min(by_module[module])
    assert set(_names(build_app(first))) == by_module[module]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_command_built_alone_has_the_same_help(name: str) -> None:
    runner = CliRunner()
    alone = runner.invoke(build_app(name), [name, "--help"], prog_name="llmcli")
    whole = runner.invoke(full_app(), [name, "--help"], prog_name="llmcli")
    assert alone.exit_code == whole.exit_code == 0, alone.output + whole.output
    assert alone.output == whole.output


def test_run_imports_no_other_command() -> None:
    code = (
        "import sys\n"
        "from llmcli.cli import main\n"
        "try:\n"
        "    main(['run', '--help'])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('llmcli.commands.'))\n"
        "print(' '.join(loaded), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stderr.split())
    assert "llmcli.commands.run" in loaded
    others = {f"llmcli.commands.{m}" for m in COMMANDS.values()} - {"llmcli.commands.run"}
    assert not loaded & others


def test_an_unknown_command_is_told_apart_from_the_known_ones() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "llmcli", "runn"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "No such command 'runn'" in proc.stderr
    assert "run" in proc.stderr.split("'runn'", 1)[1]  # the suggestion needs every name
