"""`llmcli lens`: the logit lens, what the model would predict after each layer."""

from __future__ import annotations

from typing import Annotated

import typer

from llmcli import terminal
from llmcli.commands import _inside
from llmcli.commands import _options as opt
from llmcli.commands._invocation import Invocation
from llmcli.resolve.with_progress import model_file
from llmcli.ui import console

EPILOG = """\
Examples:

  llmcli lens "The capital of France is"

  llmcli lens --json -k 3 "One, two, three, four" | jq '.layers[-1].positions[-1]'

Output: on a terminal, a table with a row per layer and a column per token of the text
(the last ones that fit), each cell the likeliest next token after that layer and its
probability. Piped: tab-separated lines (layer, position, token, rank, id, probability,
prediction). --json: {"tokens", "layers": [{"layer", "positions": [[{"id", "text",
"probability"}]]}]}. The last layer is the model's real next-token distribution.
"""


def register(app: typer.Typer) -> None:
    app.command(
        "lens",
        help="Show what the model would predict after each layer (the logit lens).\n\n"
        "Each layer's output goes through the model's final norm and output head. "
        f" {_inside.RULE} The text is the argument, stdin, or both.",
        epilog=EPILOG,
    )(lens)


def lens(
    context: typer.Context,
    text: _inside.TextArg = None,
    model: opt.ModelOpt = None,
    chat: _inside.ChatOpt = False,
    top_k: Annotated[
        int,
        typer.Option(
            "--top-k", "-k", min=1, max=100, help="Tokens per layer and position (TSV, JSON)."
        ),
    ] = 5,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print every layer and position as JSON.")
    ] = False,
    ctx: _inside.InsideCtxOpt = _inside.DEFAULT_INSIDE_CTX,
    threads: opt.ThreadsOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    verbose: opt.VerboseOpt = False,
) -> None:
    words = _inside.text_argument(text)
    path = model_file(model)

    from llmcli.engine import lens as core
    from llmcli.ui import lens_view as view

    table = not json_out and terminal.current().stdout_rich
    with _inside.load(Invocation.from_context(context), path) as llm:
        tokens = _inside.prompt_tokens(llm, words, chat=chat)
        # The output head is most of the cost: a table computes only what it shows, the
        # likeliest token in the columns that fit.
        shown = view.table_positions(len(tokens)) if table else None
        k = 1 if table else top_k
        found = core.lens(llm, tokens, top_k_tokens=k, limit=ctx, last_positions=shown)

    if json_out:
        console.emit_json(view.as_json(found))
    elif table:
        view.render(found)
    else:
        console.emit_text(view.lens_tsv(found))
