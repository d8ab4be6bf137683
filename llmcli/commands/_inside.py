"""What the inside commands (`next`, `lens`, `attention`, `explain`) share: the text they
read, the one rule for the chat template, and how the model is loaded.

The rule: the text is read as is, the way a completion model continues it, and `--chat`
wraps it in the model's chat template first (as `run` and `chat` send a prompt). Raw is
the default because looking inside is about what the model does with *this* text: a
template adds dozens of tokens of its own (a system prompt, role markers) to every map,
lens column and token list, and the next token after a template is the start of a reply,
not the continuation people ask about ("The capital of France is" -> " Paris").
"""

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
        help="The text the model reads, as is unless --chat. Combined with stdin when "
        "both are given.",
        show_default=False,
    ),
]
# The one sentence each inside command's --help states about the rule.
RULE = (
    "The text is read as is, as a completion model continues it; --chat wraps it in the "
    "model's chat template first, as `run` sends a prompt."
)
ChatOpt = Annotated[
    bool,
    typer.Option(
        "--chat",
        help="Wrap the text in the model's chat template first (as `run` does). "
        "Default: the text as is.",
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


def prompt_tokens(llm: Model, text: str, *, chat: bool, system: str | None = None) -> list[int]:
    """The tokens the model reads under the rule above. A model without a chat template
    reads the plain text, and the user is told so."""
    from llmcli.engine.types import Message

    if chat and not llm.has_chat_template:
        console.notice("this model has no chat template; using the plain text")
    if not chat or not llm.has_chat_template:
        return llm.completion_tokens(f"{system}\n\n{text}" if system else text)
    messages = [Message(role="system", content=system)] if system else []
    messages.append(Message(role="user", content=text))
    return llm.chat_tokens(messages)


def load(invocation: Invocation, path: Path) -> Model:
    """The model with a minimal context of its own: the work happens in a context made
    for the text (see llmcli.engine.capture), and --ctx bounds that text."""
    from llmcli.engine.model import Model

    return Model(invocation.load_options(path, n_ctx=256), notify=console.notice)
