"""`llmcli show`: the model card, read from the GGUF header without loading the model."""

from __future__ import annotations

from typing import Annotated

import typer

from llmcli.commands._options import ModelArg
from llmcli.errors import LlmcliError
from llmcli.projector_files import projector_beside, projector_inputs
from llmcli.resolve.with_progress import model_file
from llmcli.ui import console

EPILOG = """\
Examples:

  llmcli show smollm2:135m

  llmcli show ./models/qwen2.5-7b-instruct-q4_k_m.gguf --json | jq .parameters

  llmcli show bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M --template > template.jinja
"""


def register(app: typer.Typer) -> None:
    app.command(
        "show",
        help="Show a model's card: architecture, size, quantization, context, license.\n\n"
        "Read from the GGUF file's header, without loading the model. On a terminal it "
        "also explains the network's shape in plain words.",
        epilog=EPILOG,
    )(show)


def show(
    ref: ModelArg = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the card as one JSON object.")
    ] = False,
    template: Annotated[
        bool, typer.Option("--template", help="Print only the chat template, verbatim.")
    ] = False,
) -> None:
    from llmcli.gguf_file.info import model_card
    from llmcli.ui.model_card import render_card, render_template

    path = model_file(ref)
    card = model_card(path)
    # A projector beside the model lets it read images or audio (run -a, serve).
    projector = projector_beside(path)
    inputs = projector_inputs(projector) if projector is not None else []
    if template:
        if not card.has_chat_template:
            raise LlmcliError(f"{card.name or card.path} has no chat template")
        render_template(card)
    elif json_out:
        found = {"path": str(projector), "inputs": inputs} if projector is not None else None
        console.emit_json({**card.as_dict(), "projector": found})
    else:
        extra = []
        if projector is not None:
            extra.append(("projector", f"{projector.name} ({', '.join(inputs) or 'unreadable'})"))
        render_card(card, extra)
