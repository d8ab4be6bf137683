"""`llmcli embed`: one vector per text, as JSON lines."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from llmcli import terminal
from llmcli.commands import _options as opt
from llmcli.errors import UsageError
from llmcli.resolve.with_progress import model_file
from llmcli.ui import console

# Most embedding models are trained on texts of up to 512 tokens.
DEFAULT_EMBED_CTX = 512

EPILOG = """\
Examples:

  llmcli embed "The king sat on his throne in the castle."

  llmcli embed --normalize -m nomic-ai/nomic-embed-text-v1.5-GGUF:Q8_0 < lines.txt > vec.jsonl

  llmcli embed "first text" "second text" | jq '.embedding | length'

Pooling: an embedding model's GGUF declares how it pools its token vectors (CLS, last
token, mean) and that is used; a generative model's token vectors are averaged.
"""

EmbedCtxOpt = Annotated[
    int,
    typer.Option("--ctx", "-c", min=16, help="Longest text, in tokens, that can be embedded."),
]


def register(app: typer.Typer) -> None:
    app.command(
        "embed",
        help="Turn texts into vectors (embeddings), one JSON line per text.\n\n"
        'Each line is {"text": ..., "embedding": [...]}. The texts are the arguments, '
        "else one per line of stdin (blank lines skipped). On a terminal, a summary of "
        "each vector instead (--json for the lines).",
        epilog=EPILOG,
    )(embed)


def texts_from(arguments: list[str] | None) -> list[str]:
    """The arguments, else the non-blank lines of stdin; text that is not valid UTF-8
    has its bad bytes replaced (the engine takes UTF-8 only)."""
    if arguments:
        return [a.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for a in arguments]
    if terminal.current().stdin_isatty:
        return []
    data = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    return [line for line in data.splitlines() if line.strip()]


def embed(
    texts: Annotated[
        list[str] | None,
        typer.Argument(help="Texts to embed. Default: one per line of stdin.", show_default=False),
    ] = None,
    model: opt.ModelOpt = None,
    normalize: Annotated[
        bool, typer.Option("--normalize", help="Scale each vector to length 1.")
    ] = False,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json", help="JSON lines even on a terminal (which otherwise gets a summary)."
        ),
    ] = False,
    ctx: EmbedCtxOpt = DEFAULT_EMBED_CTX,
    threads: opt.ThreadsOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    verbose: opt.VerboseOpt = False,
) -> None:
    inputs = texts_from(texts)
    if not inputs:
        raise UsageError("no text given: pass texts as arguments or one per line on stdin")

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
        if not json_out and terminal.current().stdout_rich:
            from llmcli.ui.inspect_views import render_vector_summaries

            render_vector_summaries(inputs, vectors.embed(llm, inputs, normalize=normalize))
            return
        # One at a time: each line reaches the reader as soon as it is ready.
        for text in inputs:
            (vector,) = vectors.embed(llm, [text], normalize=normalize)
            console.emit_json({"text": text, "embedding": vector})
