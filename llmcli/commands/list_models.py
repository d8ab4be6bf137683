"""`llmcli list` (or `ls`): the GGUF models in the local Hugging Face cache."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.humanize import format_age, format_bytes
from llmcli.ui import console
from llmcli.ui.tables import render_table

if TYPE_CHECKING:
    from llmcli import store

EPILOG = """\
Includes models other tools (huggingface_hub, llama.cpp) put in the same cache.

Examples:

  llmcli list

  llmcli list --json | jq -r '.[].name'
"""

HELP = (
    "List the models in the local cache, and the starter model when installed: name to "
    "use with -m, size, age."
)


def register(app: typer.Typer) -> None:
    app.command("list", help=HELP, epilog=EPILOG)(list_models)
    app.command("ls", help=HELP, epilog=EPILOG, hidden=True)(list_models)


def list_models(
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON array of objects on stdout.")
    ] = False,
) -> None:
    from llmcli import store

    found = store.list_models()
    starter = _starter()
    if starter is not None:
        found = [starter, *found]
    if json_out:
        console.emit_json([_as_json(m) for m in found])
    elif not found:
        console.notice("no models in the cache yet; try `llmcli pull qwen2.5:1.5b`")
    else:
        _print_table(found)
    _mention_leftovers(store.leftovers())


def _starter() -> store.CachedModel | None:
    """The model pip installed with llmcli, as a row like the cached ones."""
    from llmcli import store
    from llmcli.starter import NAME, PACKAGE, starter_path

    path = starter_path()
    if path is None:
        return None
    st = path.stat()
    return store.CachedModel(
        name=NAME,
        repo_id=f"{PACKAGE} (installed with llmcli)",
        commit="",
        refs=(),
        files=(path.name,),
        quant="Q4_1",
        size=st.st_size,
        modified=st.st_mtime,
        path=path,
    )


def _print_table(found: list[store.CachedModel]) -> None:
    rows = [
        [
            m.name,
            m.quant or "-",
            format_bytes(m.size),
            format_age(m.modified),
            m.repo_id,
            m.files[0]
            + (f" (+{len(m.files) - 1} parts)" if len(m.files) > 1 else "")
            + "".join(f" +{kind}" for kind in _inputs(m)),
        ]
        for m in found
    ]
    # The name is what -m takes, the size what `rm` would free: those stay.
    headers = ["NAME", "QUANT", "SIZE", "MODIFIED", "REPO", "FILE"]
    render_table(headers, rows, numeric=[2], drop=[5, 4, 3, 1])


def _mention_leftovers(leftovers: list[store.Leftover]) -> None:
    """Interrupted downloads are not models, but they take space: say how to get it back."""
    if not leftovers:
        return
    repos = sorted({p.repo_id for p in leftovers}, key=str.lower)
    size = format_bytes(sum(p.size for p in leftovers))
    which = "that repo" if len(repos) == 1 else "each repo"
    console.notice(
        f"{size} reclaimable from interrupted downloads ({', '.join(repos)}):"
        f" `llmcli pull` or `llmcli rm` of {which} frees it"
    )


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
        # What its projector, pulled beside it, lets it read ("vision", "audio").
        "inputs": _inputs(model),
    }


def _inputs(model: store.CachedModel) -> list[str]:
    from llmcli.projector_files import projector_beside, projector_inputs

    projector = projector_beside(model.path)
    return projector_inputs(projector) if projector is not None else []
