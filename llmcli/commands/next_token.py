"""`llmcli next`: the tokens a model considers next, with their probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli import terminal
from llmcli.commands import _inside
from llmcli.commands import _options as opt
from llmcli.commands._invocation import Invocation
from llmcli.commands.prompt_input import combine, read_stdin
from llmcli.engine.types import START_CTX
from llmcli.resolve.with_progress import model_file
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.engine.distribution import Step

EPILOG = """\
Examples:

  llmcli next "The cat sat on the" --top-k 5

  llmcli next --steps 6 "Once upon a time"

  llmcli next --chat "What is the capital of France?"

  llmcli next --json --chat "Say yes or no." | jq '.steps[0].candidates[0]'

Output: on a terminal, a bar chart per step; piped, tab-separated lines
(step, rank, id, probability, token text with \\n, \\t, \\r and \\\\ escaped).
The probabilities are the model's own (temperature 1, no top-k/top-p filtering);
--steps follows the likeliest token each time, as `llmcli run --temperature 0` does.
"""


def register(app: typer.Typer) -> None:
    app.command(
        "next",
        help="Show the likeliest next tokens for a prompt, with their probabilities.\n\n"
        f"{_inside.RULE} The prompt is the argument, stdin, or both.",
        epilog=EPILOG,
    )(next_token)


def next_token(
    context: typer.Context,
    prompt: Annotated[
        str | None,
        typer.Argument(
            help="The prompt. Combined with stdin when both are given.", show_default=False
        ),
    ] = None,
    model: opt.ModelOpt = None,
    system: opt.SystemOpt = None,
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=1, max=1000, help="How many tokens to list.")
    ] = 10,
    steps: Annotated[
        int,
        typer.Option(
            "--steps", min=1, max=1000, help="Follow the likeliest token for this many steps."
        ),
    ] = 1,
    chat: _inside.ChatOpt = False,
    # The default now; kept so that scripts written when the chat template was the
    # default still run.
    _raw: Annotated[bool, typer.Option("--raw", hidden=True)] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with every step.")
    ] = False,
    ctx: opt.CtxOpt = opt.DEFAULT_CONTEXT,
    threads: opt.ThreadsOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    verbose: opt.VerboseOpt = False,
) -> None:
    term = terminal.current()
    text = combine(prompt, None if term.stdin_isatty else read_stdin())
    path = model_file(model)
    load = Invocation.from_context(context).load_options(path, start_ctx=START_CTX)

    from llmcli.engine import distribution

    with distribution.load_model(load, notify=console.notice) as llm:
        tokens = _inside.prompt_tokens(llm, text, chat=chat, system=system)
        found = distribution.next_tokens(llm, tokens, k=top_k, steps=steps)

    from llmcli.ui import inspect_views as view

    if json_out:
        console.emit_json(_as_json(found, len(tokens)))
    elif term.stdout_rich:
        view.render_steps(found, text)
    else:
        console.emit_text(view.steps_tsv(found))


def _as_json(steps: Sequence[Step], prompt_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "text": steps[-1].text_so_far if steps else "",
        "steps": [
            {
                "candidates": [
                    {
                        "id": c.token.id,
                        "text": c.token.text,
                        "bytes": list(c.token.data),
                        "probability": c.probability,
                        "logit": c.logit,
                    }
                    for c in step.candidates
                ]
            }
            for step in steps
        ],
    }
