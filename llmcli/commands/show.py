"""`llmcli show`: the model card, read from the GGUF header without loading the model."""

from __future__ import annotations

from typing import Annotated

import typer

from llmcli.commands._options import ModelArg
from llmcli.errors import LlmcliError
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

    card = model_card(model_file(ref))
    if template:
        if not card.has_chat_template:
            raise LlmcliError(f"{card.name or card.path} has no chat template")
        render_template(card)
    elif json_out:
        console.emit_json(card.as_dict())
    else:
        render_card(card)
