"""`llmcli templates list|show|edit|path`: prompt templates for `run -t` and `chat -t`."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
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


@templates_app.command(
    "list",
    short_help="List built-in templates and yours.",
    epilog="Examples:\n\n  llmcli templates list --json",
)
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


@templates_app.command(
    "show",
    short_help="Print a template's TOML.",
    epilog="Examples:\n\n  llmcli templates show translate",
)
def show_command(name: NameArg) -> None:
    """Print a template's TOML, and where it comes from on stderr."""
    template = prompt_templates.load(name)
    console.notice(f"{template.name}: {template.source}")
    console.emit_text(template.text)


@templates_app.command(
    "edit",
    short_help="Open your copy of a template in your editor.",
    epilog="Examples:\n\n  llmcli templates edit summarize\n\n  EDITOR=nano llmcli ...",
)
def edit_command(name: NameArg) -> None:
    """Open your copy of a template in $VISUAL or $EDITOR: a built-in is copied to your
    folder first, a new name starts from a skeleton. The result is checked."""
    path = prompt_templates.user_file(name)
    editor = _editor(path)  # before anything is written: a failure leaves nothing behind
    created = not path.exists()
    # The folders this command makes, deepest first: removed again if nothing is kept.
    made = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    text = prompt_templates.BUILTIN.get(name, prompt_templates.SKELETON)
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    try:
        failed = subprocess.run([*editor, str(path)], check=False).returncode != 0
    except OSError as exc:
        if created:
            _remove_untouched(path, text, made)
        raise UsageError(f"cannot run the editor {shlex.join(editor)}: {exc.strerror}") from exc
    if created and failed and _remove_untouched(path, text, made):
        # An editor that fails (vim's :cq) and saved nothing: the copy goes again.
        raise UsageError(f"the editor {shlex.join(editor)} failed; {path} was not created")
    if created:
        console.notice(f"created {path}")
    prompt_templates.load(name)  # says what is wrong with the edited file, if anything


# Tried in order when neither $VISUAL nor $EDITOR is set, as git and crontab do.
_FALLBACK_EDITORS = ("notepad",) if sys.platform == "win32" else ("sensible-editor", "nano", "vi")


def _editor(path: Path) -> list[str]:
    """The editor's command line: $VISUAL, else $EDITOR, else the first common editor
    found; a one-line UsageError when there is none to run."""
    for variable in ("VISUAL", "EDITOR"):
        value = os.environ.get(variable, "").strip()
        if not value:
            continue
        try:
            command = shlex.split(value)
        except ValueError:
            command = []
        if not command or shutil.which(command[0]) is None:
            raise UsageError(f"cannot run the editor ${variable} names ({value!r}): not found")
        return command
    for candidate in _FALLBACK_EDITORS:
        found = shutil.which(candidate)
        if found:
            return [found]
    raise UsageError(f"no editor found: set $VISUAL or $EDITOR (e.g. EDITOR=nano), or write {path}")


def _remove_untouched(path: Path, text: str, folders: list[Path]) -> bool:
    """Remove a file this command wrote if the editor left it as written, and the empty
    folders made for it. True if it was removed."""
    try:
        if path.read_text(encoding="utf-8") != text:
            return False
        path.unlink()
        for folder in folders:
            folder.rmdir()
    except OSError:
        pass
    return not path.exists()


@templates_app.command(
    "path",
    short_help="Print where your templates are.",
    epilog="Examples:\n\n  llmcli templates path\n\n  llmcli templates path mine",
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
