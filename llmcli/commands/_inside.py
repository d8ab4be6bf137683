"""What `attention` and `lens` share: the text they read and how the model is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmcli import terminal
from llmcli.commands.prompt_input import combine, read_stdin
from llmcli.engine.types import LoadOptions
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.engine.model import Model

TextArg = Annotated[
    str | None,
    typer.Argument(
        help="The text the model reads, as is (no chat template). Combined with stdin when "
        "both are given.",
        show_default=False,
    ),
]
# Looking inside evaluates the whole text at once and keeps per-token results: the
# default bound is far below a generation context.
DEFAULT_INSIDE_CTX = 1024
InsideCtxOpt = Annotated[
    int,
    typer.Option("--ctx", "-c", min=16, help="The most tokens of text to look inside at once."),
]


def text_argument(text: str | None) -> str:
    term = terminal.current()
    return combine(text, None if term.stdin_isatty else read_stdin())


def load(path: Path, *, threads: int | None, gpu_layers: int | None, verbose: bool) -> Model:
    """The model with a minimal context of its own: the work happens in a context made
    for the text (see llmcli.engine.capture)."""
    from llmcli.engine.model import Model

    options = LoadOptions(
        path=path, n_ctx=256, n_threads=threads, n_gpu_layers=gpu_layers, verbose=verbose
    )
    return Model(options, notify=console.notice)
