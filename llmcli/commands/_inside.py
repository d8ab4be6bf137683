"""What `attention` and `lens` share: the text they read and how the model is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmcli import terminal
from llmcli.commands.prompt_input import combine, read_stdin
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.commands._invocation import Invocation
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


def load(invocation: Invocation, path: Path) -> Model:
    """The model with a minimal context of its own: the work happens in a context made
    for the text (see llmcli.engine.capture), and --ctx bounds that text."""
    from llmcli.engine.model import Model

    return Model(invocation.load_options(path, n_ctx=256), notify=console.notice)
