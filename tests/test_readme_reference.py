"""The README's reference block is generated from the CLI and must match it."""

from __future__ import annotations

from pathlib import Path

from llmcli.cli import app
from llmcli.errors import EXIT_CODE_DOCS, ExitCode
from llmcli.readme_reference import END, START, render, updated

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_reference_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text
    assert updated(text, render(app)) == text, "run: python -m llmcli.readme_reference"


def test_reference_covers_every_command_option_and_exit_code() -> None:
    block = render(app)
    for option in ("--temperature", "--gpu-layers", "--json", "--revision"):
        assert option in block
    for command in ("llmcli run", "llmcli config set", "llmcli doctor", "llmcli completion"):
        assert f"### `{command}`" in block
    assert set(EXIT_CODE_DOCS) == set(ExitCode)
    for code in ExitCode:
        assert f"| {int(code)} |" in block
    for variable in ("LLMCLI_CONFIG", "HF_HUB_OFFLINE", "HF_ENDPOINT", "NO_COLOR"):
        assert f"`{variable}`" in block


def test_updated_only_replaces_the_marked_block() -> None:
    text = f"intro\n{START}\nold\n{END}\noutro\n"
    assert updated(text, f"{START}\nnew\n{END}") == f"intro\n{START}\nnew\n{END}\noutro\n"
