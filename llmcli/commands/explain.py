"""`llmcli explain`: how the model answers, told on the user's own text and model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmcli.commands import _inside
from llmcli.commands import _options as opt
from llmcli.commands._invocation import Invocation
from llmcli.errors import UsageError
from llmcli.resolve.with_progress import model_file
from llmcli.ui import console

EPILOG = """\
Examples:

  llmcli explain "The capital of France is"

  llmcli explain -m smollm2:135m --html story.html "The cat sat on the mat because"

  llmcli explain --json "One, two, three," | jq '.lens.layers[-1].positions[-1][0]'

  echo "Water boils at" | llmcli explain --chat

Sections, in order: tokens, embeddings (nearest rows of the model's own embedding
table), the network's shape, attention (what the last token looks at in each layer,
and one head's map for a short text), the logit lens, the next token (and how
--temperature and --top-p reshape its distribution) and a short greedy continuation.
The numbers are those of `tokenize`, `attention`, `lens` and `next --steps N` on the
same text. Output: a page of text that fits the terminal (plain text when piped);
--json: one object with the keys tokens, embeddings, network, attention, lens, next,
continuation; --html FILE: a self-contained page with interactive attention maps.
"""

# Lens columns kept: the page shows the last token's, the HTML table the last few.
LENS_POSITIONS = 12


def register(app: typer.Typer) -> None:
    app.command(
        "explain",
        help="Explain how the model answers, step by step, on your own text.\n\n"
        f"{_inside.RULE} The text is the argument, stdin, or both. One captured forward "
        "pass serves all of attention, one the lens, and the model's own context the next "
        "token: each number is the one the single command gives.",
        epilog=EPILOG,
    )(explain)


def explain(
    context: typer.Context,
    text: _inside.TextArg = None,
    model: opt.ModelOpt = None,
    chat: _inside.ChatOpt = False,
    steps: Annotated[
        int,
        typer.Option("--steps", min=1, max=64, help="Tokens in the greedy continuation."),
    ] = 6,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write the story as one self-contained HTML page to this file.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the story's numbers as one JSON object.")
    ] = False,
    ctx: _inside.InsideCtxOpt = _inside.DEFAULT_INSIDE_CTX,
    threads: opt.ThreadsOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    verbose: opt.VerboseOpt = False,
) -> None:
    if html is not None and not html.parent.resolve().is_dir():
        raise UsageError(f"cannot write {html}: {html.parent} is not a folder")
    words = _inside.text_argument(text)
    path = model_file(model)

    from llmcli.engine import inside
    from llmcli.engine.model import Model
    from llmcli.engine.types import START_CTX
    from llmcli.explain import story as tale
    from llmcli.gguf_file.info import model_card

    # Room for the text and the continuation; the context starts small and grows.
    load = Invocation.from_context(context).load_options(
        path, n_ctx=ctx + steps + 1, start_ctx=min(START_CTX, ctx + steps + 1)
    )
    with Model(load, notify=console.notice) as llm:
        tokens = _inside.prompt_tokens(llm, words, chat=chat)
        inside.check_length(len(tokens), ctx)
        found = inside.look_inside(
            llm, tokens, limit=ctx, lens_positions=LENS_POSITIONS, steps=steps
        )
        wrapped = chat and llm.has_chat_template
    story = tale.build(found, model_card(path), text=words, chat=wrapped)

    if html is not None:
        from llmcli.ui import explain_page

        explain_page.write(html, story)
        console.notice(f"wrote {html}")
    if json_out:
        console.emit_json(story)
    else:
        from llmcli.ui import explain_view

        explain_view.render(story)
