"""The README's reference section, rendered from the CLI itself.

    python -m llmcli.readme_reference          rewrite the block in README.md
    python -m llmcli.readme_reference --check  exit 1 when the block is out of date

Commands and options come from the click command objects (so a new option cannot go
undocumented), exit codes from `errors.EXIT_CODE_DOCS`, environment variables from
`ENVIRONMENT` below. Only the text between the markers is touched.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

from llmcli.click_api import Command, Context
from llmcli.errors import EXIT_CODE_DOCS

START = "<!-- reference:start -->"
END = "<!-- reference:end -->"
README = Path(__file__).resolve().parent.parent / "README.md"

ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("LLMCLI_MODEL", "model used when `-m` is not given (before the config file's `model`)"),
    ("LLMCLI_CONFIG", "path of the config file (default: the platform's config directory)"),
    ("LLMCLI_HOME", "where llmcli keeps its data (default: the platform's data directory)"),
    ("LLMCLI_PROMPT_CACHE_MB", "size limit of the prompt cache in MB (default 2048)"),
    ("LLMCLI_DEBUG", "`1`: show the traceback with an error"),
    (
        "LLMCLI_ENGINE_SETUP",
        "`auto` (default): the safe, fastest setup measured for each model; or pin one: "
        "`repack`, `no-repack`, `repack-single`",
    ),
    ("LLMCLI_THREADS", "default CPU threads (default: the usable cores not busy at start-up)"),
    ("LLMCLI_ENGINE_CACHE", "where engine measurements are kept (default: llmcli's cache)"),
    ("LLMCLI_MEMORY", "plan models against this much RAM (e.g. `8GB`) instead of what is free"),
    (
        "LLMCLI_GPU_MEMORY",
        "plan layers on the GPU against this much GPU memory (e.g. `8GB`) instead of what "
        "the GPU reports free",
    ),
    ("LLMCLI_RPC", "RPC workers for `--rpc` when it is not given: `HOST:PORT[,HOST:PORT...]`"),
    ("LLMCLI_LOG", "`0`: keep answers out of the answer log; `1`: log them (over the config)"),
    ("LLMCLI_PROBE_FAULT", "testing: `SETUP=SIGNAL` makes that setup's probe die by the signal"),
    (
        "LLMCLI_SERVE_DEADLINES",
        "testing: `HEAD,BODY` seconds for serve's request deadlines (default 10,60)",
    ),
    ("NO_COLOR", "any value: no colour on any stream"),
    ("FORCE_COLOR", "colour and Markdown even when not on a terminal (`0`: off)"),
    ("HF_HOME", "Hugging Face home: the cache is `$HF_HOME/hub`, the token `$HF_HOME/token`"),
    ("HF_HUB_CACHE", "the model cache folder itself (default `~/.cache/huggingface/hub`)"),
    ("HF_TOKEN", "token for private and gated repos (else the one `hf auth login` saved)"),
    ("HF_HUB_OFFLINE", "`1`: never touch the network; only cached models work"),
    ("HF_ENDPOINT", "Hub address, for a mirror or a private Hub"),
    ("HF_HUB_ETAG_TIMEOUT", "whole seconds to wait for the Hub to answer a request (default 2)"),
    ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "`1`: send no token unless `HF_TOKEN` is set"),
)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _summary(command: Command) -> str:
    return _cell((command.help or "").split("\n\n")[0])


def _commands(group: TyperGroup, ctx: Context) -> list[tuple[str, Command, Context]]:
    """Every visible command, depth first, with a context for rendering it."""
    found: list[tuple[str, Command, Context]] = []
    for name, command in group.commands.items():
        if getattr(command, "hidden", False):
            continue
        sub = Context(command, info_name=name, parent=ctx)
        found.append((sub.command_path, command, sub))
        if isinstance(command, TyperGroup):
            found.extend(_commands(command, sub))
    return found


def _command_section(path: str, command: Command, ctx: Context) -> list[str]:
    usage = command.get_usage(ctx).removeprefix("Usage: ")
    lines = [f"### `{path}`", "", _summary(command), "", "```", usage, "```", ""]
    rows = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None or param.name == "help":
            continue
        rows.append(f"| `{record[0]}` | {_cell(record[1])} |")
    if rows:
        lines += ["| option / argument | description |", "| --- | --- |", *rows, ""]
    return lines


def render(app: typer.Typer) -> str:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    ctx = Context(root, info_name="llmcli")
    commands = _commands(root, ctx)
    lines = [
        START,
        "<!-- Generated from the CLI by `python -m llmcli.readme_reference`; "
        "do not edit by hand. -->",
        "",
        "## Reference",
        "",
        "| command | what it does |",
        "| --- | --- |",
    ]
    lines += [f"| `{path}` | {_summary(command)} |" for path, command, _ in commands]
    lines.append("")
    for path, command, sub in commands:
        if not isinstance(command, TyperGroup):
            lines += _command_section(path, command, sub)
    lines += ["### Environment variables", "", "| variable | effect |", "| --- | --- |"]
    lines += [f"| `{name}` | {_cell(text)} |" for name, text in ENVIRONMENT]
    lines += ["", "### Exit codes", "", "| code | meaning |", "| --- | --- |"]
    lines += [f"| {int(code)} | {_cell(text)} |" for code, text in EXIT_CODE_DOCS.items()]
    lines += ["", END]
    return "\n".join(lines)


def updated(readme: str, block: str) -> str:
    """`readme` with the marked block replaced (appended when there are no markers)."""
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        return readme.rstrip("\n") + "\n\n" + block + "\n"
    return readme[:start] + block + readme[end + len(END) :]


def main(argv: list[str]) -> int:
    from llmcli.cli import app

    current = README.read_text(encoding="utf-8")
    new = updated(current, render(app))
    if "--check" in argv:
        if new != current:
            print("README.md reference is out of date: run python -m llmcli.readme_reference")
            return 1
        return 0
    if new != current:
        README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
