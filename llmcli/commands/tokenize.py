"""`llmcli tokenize`: the tokens a model sees for a text."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from llmcli import terminal
from llmcli.commands import _options as opt
from llmcli.errors import UsageError
from llmcli.resolve.with_progress import model_file
from llmcli.ui import console

EPILOG = """\
Examples:

  llmcli tokenize "Hello, wörld! 你好 🙂"

  llmcli tokenize --special "<|im_start|>user"

  llmcli tokenize --json "naïve café" | jq '.[].text'

  wc -c < notes.md; llmcli tokenize --ids < notes.md | wc -w

Output: on a terminal, the text with each token in its own colour, then the ids.
Piped, one token per line: its id, a tab, its text, with newline, tab, carriage
return and backslash written as \\n, \\t, \\r and \\\\. Bytes that are only part of a
character show as <0xE6>. A summary (tokens, characters per token) goes to stderr.
"""


def register(app: typer.Typer) -> None:
    app.command(
        "tokenize",
        help="Show how a model cuts text into tokens.\n\n"
        "The text is the argument, else stdin, taken exactly (a final newline counts). "
        "Only the tokenizer is loaded, so this is fast for any model size.",
        epilog=EPILOG,
    )(tokenize)


def tokenize(
    text: Annotated[
        str | None,
        typer.Argument(help="The text. Default: all of stdin.", show_default=False),
    ] = None,
    model: opt.ModelOpt = None,
    special: Annotated[
        bool,
        typer.Option(
            "--special",
            help="Read control-token spellings such as <|im_end|> as those tokens, as a "
            "chat template does. Default: they are plain text.",
        ),
    ] = False,
    ids_only: Annotated[
        bool, typer.Option("--ids", help="Print only the ids, space-separated, on one line.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a JSON list of {id, text, bytes}.")
    ] = False,
    verbose: opt.VerboseOpt = False,
) -> None:
    if text is None:
        if terminal.current().stdin_isatty:
            raise UsageError("no text given: pass it as an argument or on stdin")
        # surrogateescape: invalid UTF-8 reaches the tokenizer as the bytes it was.
        text = sys.stdin.buffer.read().decode("utf-8", errors="surrogateescape")

    from llmcli.engine import vocab

    with vocab.load_vocab(model_file(model), verbose=verbose) as llm:
        tokens = vocab.tokenize(llm, text, special=special)

    from llmcli.ui import inspect_views as view

    if json_out:
        console.emit_json([{"id": t.id, "text": t.text, "bytes": list(t.data)} for t in tokens])
    elif ids_only:
        console.emit_text(" ".join(str(t.id) for t in tokens))
    elif terminal.current().stdout_rich:
        view.render_tokens(vocab.spans(tokens))
    elif tokens:
        console.emit_text(view.tokens_plain(tokens))
    console.info(view.token_summary(len(tokens), len(text)))
