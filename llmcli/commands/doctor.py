"""`llmcli doctor`: what llmcli sees on this machine, to check a setup or file a bug."""

from __future__ import annotations

from typing import Annotated

import typer

from llmcli.ui import console

EPILOG = """\
Examples:

  llmcli doctor

  llmcli doctor --json | jq .engine.gpu_offload
"""


def register(app: typer.Typer) -> None:
    app.command(
        "doctor",
        help="Check the setup: engine build and GPU offload, threads, cache, Hub, config.\n\n"
        "Never prints the Hugging Face token, only whether one is set.",
        epilog=EPILOG,
    )(doctor)


def doctor(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object.")
    ] = False,
) -> None:
    from llmcli.diagnostics import report
    from llmcli.ui.doctor_view import render

    facts = report()
    if json_out:
        console.emit_json(facts)
    else:
        render(facts)
