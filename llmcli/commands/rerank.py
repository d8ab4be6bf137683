"""`llmcli rerank`: documents ordered by how relevant a reranker model finds them."""

from __future__ import annotations

from typing import Annotated

import typer

from llmcli.commands import _options as opt
from llmcli.commands.embed import texts_from
from llmcli.errors import UsageError
from llmcli.resolve.with_progress import model_file
from llmcli.ui import console

# Room for a query and a passage of a few paragraphs.
DEFAULT_RERANK_CTX = 1024

EPILOG = """\
Examples:

  llmcli rerank -m ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF:Q8_0 "capital of France" \\
      "Paris is the capital of France." "Bananas are yellow."

  grep -h . notes/*.txt | llmcli rerank -m ./reranker.gguf --top 3 "backups" -

  llmcli rerank -m ./reranker.gguf --json "query" - < passages.txt | jq '.results[0]'

Output: one line per document, most relevant first: its score, a tab, its text. --json
gives {"query", "results": [{"index", "relevance_score", "document"}]}, the shape of the
server's /v1/rerank. Scores are the model's own (higher is more relevant); compare them
between documents of one query, not between models.
"""


def register(app: typer.Typer) -> None:
    app.command(
        "rerank",
        help="Order documents by relevance to a query, with a reranker model.\n\n"
        "The documents are the arguments after the query, else (or with `-`) one per line "
        "of stdin. Needs a reranker GGUF (rank pooling: bge-reranker, Qwen3-Reranker...).",
        epilog=EPILOG,
    )(rerank)


def rerank(
    query: Annotated[str, typer.Argument(help="What the documents are ranked by.")],
    documents: Annotated[
        list[str] | None,
        typer.Argument(
            help="Documents to rank. Default (or `-`): one per line of stdin.",
            show_default=False,
        ),
    ] = None,
    model: opt.ModelOpt = None,
    top: Annotated[
        int | None,
        typer.Option("--top", min=1, help="Show only the N most relevant.", show_default=False),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help='Print {"query": ..., "results": [...]}.')
    ] = False,
    ctx: Annotated[
        int,
        typer.Option("--ctx", "-c", min=16, help="Longest query and document together, in tokens."),
    ] = DEFAULT_RERANK_CTX,
    threads: opt.ThreadsOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    verbose: opt.VerboseOpt = False,
) -> None:
    given = None if documents == ["-"] else documents
    docs = texts_from(given)
    if not query.strip():
        raise UsageError("the query is empty: give some text to rank the documents by")
    if not docs:
        raise UsageError("no documents given: pass them after the query or one per line on stdin")

    from llmcli.engine import rerank as engine

    path = model_file(model)
    engine.check_reranker(path)  # llama.cpp would abort loading it with rank pooling
    with engine.load_reranker(
        path,
        n_ctx=ctx,
        n_threads=threads,
        n_gpu_layers=gpu_layers,
        verbose=verbose,
        notify=console.notice,
    ) as llm:
        ranked = engine.sorted_by_score(engine.rerank(llm, query, docs), top)
    if json_out:
        results = [
            {"index": r.index, "relevance_score": r.score, "document": {"text": docs[r.index]}}
            for r in ranked
        ]
        console.emit_json({"query": query, "results": results})
        return
    for r in ranked:
        # One line per document, whatever line breaks an argument held.
        text = " ".join(docs[r.index].split())
        console.emit_text(f"{r.score:.4f}\t{text}\n")
