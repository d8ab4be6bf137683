"""`llmcli list` (or `ls`): the GGUF models in the local Hugging Face cache."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from llmcli import store
from llmcli.humanize import format_age, format_bytes
from llmcli.ui import console
from llmcli.ui.tables import render_table

EPILOG = """\
Includes models other tools (huggingface_hub, llama.cpp) put in the same cache.

Examples:

  llmcli list

  llmcli list --json | jq -r '.[].name'
"""

HELP = "List the models in the local cache: name to use with -m, size, age."


def register(app: typer.Typer) -> None:
    app.command("list", help=HELP, epilog=EPILOG)(list_models)
    app.command("ls", help=HELP, epilog=EPILOG, hidden=True)(list_models)


def list_models(
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON array of objects on stdout.")
    ] = False,
) -> None:
    found = store.list_models()
    if json_out:
        console.emit_json([_as_json(m) for m in found])
        return
    if not found:
        console.notice("no models in the cache yet; try `llmcli pull qwen2.5:1.5b`")
        return
    rows = [
        [
            m.name,
            m.quant or "-",
            format_bytes(m.size),
            format_age(m.modified),
            m.repo_id,
            m.files[0] + (f" (+{len(m.files) - 1} parts)" if len(m.files) > 1 else ""),
        ]
        for m in found
    ]
    render_table(["NAME", "QUANT", "SIZE", "MODIFIED", "REPO", "FILE"], rows, numeric=[2])


def _as_json(model: store.CachedModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "repo": model.repo_id,
        "revision": model.commit,
        "refs": list(model.refs),
        "files": list(model.files),
        "quant": model.quant,
        "size": model.size,
        "modified": dt.datetime.fromtimestamp(model.modified, dt.timezone.utc).isoformat(),
        "path": str(model.path),
    }
