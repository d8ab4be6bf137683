"""`llmcli templates list|show|edit|path`: prompt templates for `run -t` and `chat -t`."""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import Annotated

import typer

from llmcli import prompt_templates
from llmcli.errors import UsageError
from llmcli.ui import console

EPILOG = """\
A template is a TOML file: description, system, prompt (with {{input}} where the prompt
goes), [vars] with defaults (a {{name}} without a default is required), and optionally
model, [options] (temperature, max_tokens, think...) and [schema] (a JSON schema the
answer must match). Yours go in the folder `llmcli templates path` prints; one with a
built-in's name replaces it. Precedence: command line > template > config file.

Examples:

  llmcli templates list

  llmcli templates show translate

  llmcli templates edit summarize

  cat notes.md | llmcli run -t summarize --var length="one sentence"
"""

templates_app = typer.Typer(
    name="templates",
    help="Prompt templates for `run -t` and `chat -t`: list, show, edit, path.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
)

NameArg = Annotated[
    str,
    typer.Argument(
        help="The template's name.",
        show_default=False,
        autocompletion=lambda incomplete: [
            n for n in prompt_templates.names() if n.startswith(incomplete)
        ],
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(templates_app)


@templates_app.command("list", epilog="Examples:\n\n  llmcli templates list --json")
def list_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the prompt templates: built-in ones and yours."""
    own = set(prompt_templates.user_names())
    rows = []
    for name, summary in prompt_templates.names_with_summaries():
        source = "yours" if name in own else "built-in"
        if name in own and name in prompt_templates.BUILTIN:
            source = "yours (replaces built-in)"
        rows.append((name, source, summary))
    if json_out:
        console.emit_json([{"name": n, "source": s, "description": d} for n, s, d in rows])
        return
    from llmcli.ui.tables import render_table

    render_table(("NAME", "SOURCE", "DESCRIPTION"), rows)


@templates_app.command("show", epilog="Examples:\n\n  llmcli templates show translate")
def show_command(name: NameArg) -> None:
    """Print a template's TOML, and where it comes from on stderr."""
    template = prompt_templates.load(name)
    console.notice(f"{template.name}: {template.source}")
    console.emit_text(template.text)


@templates_app.command(
    "edit", epilog="Examples:\n\n  llmcli templates edit summarize\n\n  EDITOR=nano llmcli ..."
)
def edit_command(name: NameArg) -> None:
    """Open your copy of a template in $VISUAL or $EDITOR: a built-in is copied to your
    folder first, a new name starts from a skeleton. The result is checked."""
    path = prompt_templates.user_file(name)
    if not path.exists():
        text = prompt_templates.BUILTIN.get(name, prompt_templates.SKELETON)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        console.notice(f"created {path}")
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise UsageError(
            f"no editor: set $VISUAL or $EDITOR, or edit {path} directly",
        )
    try:
        subprocess.run([*shlex.split(editor), str(path)], check=False)
    except OSError as exc:
        raise UsageError(f"cannot run the editor {editor!r}: {exc.strerror}") from exc
    prompt_templates.load(name)  # says what is wrong with the edited file, if anything


@templates_app.command(
    "path", epilog="Examples:\n\n  llmcli templates path\n\n  llmcli templates path mine"
)
def path_command(
    name: Annotated[
        str | None, typer.Argument(help="A template's name.", show_default=False)
    ] = None,
) -> None:
    """Print the folder of your templates, or the file a template of yours has (or would
    have)."""
    if name is None:
        console.emit_text(str(prompt_templates.templates_dir()))
    else:
        console.emit_text(str(prompt_templates.user_file(name)))
