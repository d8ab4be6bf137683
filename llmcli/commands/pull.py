"""`llmcli pull`: download a model from the Hugging Face Hub into the local cache."""

from __future__ import annotations

from typing import Annotated

import typer

from llmcli.commands._context_fit import NoMemoryCheckOpt, Wanted, before_download
from llmcli.commands._engine_flags import EngineFlags
from llmcli.commands._options import complete_model
from llmcli.config.options_table import DEFAULT_CTX
from llmcli.errors import UsageError
from llmcli.humanize import format_bytes
from llmcli.model_refs import LocalRef
from llmcli.ui import console

EPILOG = """\
Examples:

  llmcli pull qwen2.5:1.5b

  llmcli pull bartowski/Llama-3.2-1B-Instruct-GGUF:Q5_K_M

  llmcli pull hf.co/unsloth/gemma-3-1b-it-GGUF:Q8_0

  llmcli run -m "$(llmcli pull smollm2)" "Hi"
"""

# A pull is refused only when the model does not fit at any context: which one a later
# run uses is for that run to decide.
_ANY_CONTEXT = Wanted(DEFAULT_CTX, asked=False, flags=EngineFlags())
RevisionOpt = Annotated[
    str | None,
    typer.Option(
        "--revision", help="Branch, tag or commit to pull. Default: main.", show_default=False
    ),
]
ModelArg = Annotated[
    str,
    typer.Argument(
        help="An alias (qwen2.5:1.5b), owner/repo[:QUANT], owner/repo/file.gguf or "
        "hf.co/owner/repo:QUANT.",
        show_default=False,
        autocompletion=complete_model,
    ),
]


def register(app: typer.Typer) -> None:
    app.command(
        "pull",
        help="Download a model into the Hugging Face cache and verify its SHA-256.\n\n"
        "Prints the path of the model file on stdout. Files already cached and verified "
        "are not downloaded again. Before downloading, the file's header is read (a few "
        "MB) and the download refused (exit status 12) when the model cannot fit in "
        "memory at any context; --no-memory-check downloads it anyway.",
        epilog=EPILOG,
    )(pull)


def pull(
    model: ModelArg,
    revision: RevisionOpt = None,
    no_memory_check: Annotated[bool, NoMemoryCheckOpt] = False,
) -> None:
    # Imported here: the store and the download progress are for this command only,
    # not for every start of llmcli.
    from llmcli import store
    from llmcli.resolve import resolver
    from llmcli.ui.progress import download_progress

    ref = resolver.parse(model)
    if isinstance(ref, LocalRef):
        raise UsageError(f"{model} is a local file: there is nothing to pull")
    offline = store.HubSettings.from_env().offline
    if not (no_memory_check or offline) and store.find_cached(ref, revision=revision) is None:
        # Before a download that could never run: only the header is read.
        before_download(_ANY_CONTEXT)(ref, revision)
    with download_progress() as progress:
        local = store.pull(ref, revision=revision, progress=progress)
    console.notice(f"{ref.display}: {format_bytes(local.size)}, verified")
    console.emit_text(str(local.path))
