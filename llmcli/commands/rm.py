"""`llmcli rm`: delete models from the local Hugging Face cache."""

from __future__ import annotations

from typing import Annotated

import typer

from llmcli import store, terminal
from llmcli.commands._options import complete_cached_model
from llmcli.errors import LlmcliError, UsageError
from llmcli.humanize import format_bytes
from llmcli.ui import console
from llmcli.ui.tables import render_table

EPILOG = """\
A bare owner/repo removes every cached revision of that repo; an alias, :QUANT or a
file removes just that model.

Examples:

  llmcli rm smollm2

  llmcli rm bartowski/Llama-3.2-1B-Instruct-GGUF:Q8_0 --yes
"""


def register(app: typer.Typer) -> None:
    app.command(
        "rm",
        help="Delete models from the cache: shows what goes and the space freed, then asks.",
        epilog=EPILOG,
    )(rm)


def rm(
    models: Annotated[
        list[str],
        typer.Argument(
            help="Models to delete, as `llmcli list` names them.",
            show_default=False,
            autocompletion=complete_cached_model,
        ),
    ],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask; required when stdin is not a terminal.")
    ] = False,
) -> None:
    _refuse_starter(models)
    plan = store.plan_removal(models)
    rows = [[m.name, format_bytes(m.size), m.repo_id] for m in plan.models]
    rows += [["(interrupted download)", format_bytes(p.size), p.repo_id] for p in plan.leftovers]
    render_table(["NAME", "SIZE", "REPO"], rows, numeric=[1], to_stderr=True, drop=[2])
    console.info(f"this frees {format_bytes(plan.freed_bytes)}")
    if not yes:
        if not terminal.current().stdin_isatty:
            # Nobody can answer a prompt: refusing beats hanging or guessing.
            raise UsageError("not deleting without --yes when stdin is not a terminal")
        if not typer.confirm("Delete?", default=False, err=True):
            raise LlmcliError("nothing deleted")
    freed = plan.execute()
    for model in plan.models:
        console.emit_text(model.name)
    what = [f"{len(plan.models)} model(s)"] if plan.models or not plan.leftovers else []
    if plan.leftovers:
        what.append(f"{len(plan.leftovers)} interrupted download(s)")
    console.notice(f"deleted {' and '.join(what)}, freed {format_bytes(freed)}")


def _refuse_starter(models: list[str]) -> None:
    """The starter is a file inside a Python package, not a cached model: pip owns it."""
    import os

    from llmcli import config, starter

    for name in models:
        if name.strip().lower() != starter.NAME or os.path.exists(name):
            continue
        if name.strip().lower() in config.load().aliases:
            continue  # the user's own alias of that name is a cached model
        package = starter.PACKAGE.replace("_", "-")
        raise UsageError(
            f"the starter model comes with the {package} package, not the cache; "
            f"`pip uninstall {package}` removes it"
        )
