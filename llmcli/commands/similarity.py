"""`llmcli similarity`: how alike texts are, as a model's embeddings see them."""

from __future__ import annotations

from typing import Annotated

import typer

from llmcli import terminal
from llmcli.commands import _options as opt
from llmcli.commands.embed import DEFAULT_EMBED_CTX, EmbedCtxOpt, texts_from
from llmcli.errors import UsageError
from llmcli.resolve.with_progress import model_file
from llmcli.ui import console

EPILOG = """\
Examples:

  llmcli similarity "The king sat on his throne in the castle." \\
      "The queen wore a golden crown at the palace." \\
      "I ate a crunchy red apple for lunch."

  (the king and queen sentences come out closer to each other than to the apple one)

  llmcli similarity --json < faq-questions.txt | jq '.matrix[0]'

Output: on a terminal, a heat-map table; piped (or --tsv), tab-separated values with the
texts as the header row and first column; --json gives {"texts": [...], "matrix": [[...]]}.
"""


# Texts this short (in tokens, each) say too little for a chat model's averaged vectors.
SHORT_TOKENS = 3


def register(app: typer.Typer) -> None:
    app.command(
        "similarity",
        help="Compare texts: the cosine similarity of their embeddings, for every pair.\n\n"
        "The texts are the arguments, else one per line of stdin; at least two.",
        epilog=EPILOG,
    )(similarity)


def similarity(
    texts: Annotated[
        list[str] | None,
        typer.Argument(
            help="Texts to compare. Default: one per line of stdin.", show_default=False
        ),
    ] = None,
    model: opt.ModelOpt = None,
    json_out: Annotated[
        bool, typer.Option("--json", help='Print {"texts": [...], "matrix": [[...]]}.')
    ] = False,
    tsv: Annotated[
        bool, typer.Option("--tsv", help="Tab-separated values, even on a terminal.")
    ] = False,
    ctx: EmbedCtxOpt = DEFAULT_EMBED_CTX,
    threads: opt.ThreadsOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    verbose: opt.VerboseOpt = False,
) -> None:
    inputs = texts_from(texts)
    if len(inputs) < 2:
        raise UsageError("give at least two texts to compare")

    from llmcli.engine import vectors

    path = model_file(model)
    with vectors.load_embedder(
        path,
        n_ctx=ctx,
        n_threads=threads,
        n_gpu_layers=gpu_layers,
        verbose=verbose,
        notify=console.notice,
    ) as llm:
        matrix = vectors.cosine_matrix(vectors.embed(llm, inputs))
        longest = max(len(llm.tokenize(text, add_bos=False)) for text in inputs)
    if longest <= SHORT_TOKENS and vectors.pooling_for(path) == "mean":
        console.notice(
            "note: a chat model's token vectors, averaged, are mostly directions every "
            "text shares; for single words that swamps the meaning, so these scores rank "
            "poorly. Compare sentences, or use an embedding model (-m nomic-embed-text)"
        )

    from llmcli.ui import inspect_views as view

    if json_out:
        console.emit_json({"texts": inputs, "matrix": matrix})
    elif tsv or not terminal.current().stdout_rich:
        console.emit_text(view.matrix_tsv(inputs, matrix))
    else:
        view.render_heatmap(inputs, matrix)
