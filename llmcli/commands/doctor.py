"""`llmcli doctor`: what llmcli sees on this machine, to check a setup or file a bug."""

from __future__ import annotations

from typing import Annotated

import typer

from llmcli.ui import console

EPILOG = """\
Examples:

  llmcli doctor

  llmcli doctor --json | jq .engine.gpu_offload

  llmcli doctor --recheck -m smollm2     # measure the engine setup again, now
"""


def register(app: typer.Typer) -> None:
    app.command(
        "doctor",
        help="Check the setup: engine build and GPU offload, engine setup and threads, "
        "cache, Hub, config.\n\n"
        "Never prints the Hugging Face token, only whether one is set.",
        epilog=EPILOG,
    )(doctor)


def doctor(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object.")
    ] = False,
    recheck: Annotated[
        bool,
        typer.Option(
            "--recheck",
            help="Forget which engine setup each model uses on this machine, so it is "
            "measured again (after a reinstall or a new GPU build this happens anyway).",
        ),
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="With --recheck: measure this model now.", show_default=False
        ),
    ] = None,
) -> None:
    from llmcli.diagnostics import report
    from llmcli.ui.doctor_view import render

    if model is not None and not recheck:
        raise typer.BadParameter("-m is for --recheck", param_hint="-m")
    if recheck:
        _recheck(model)
    facts = report()
    if json_out:
        console.emit_json(facts)
    else:
        render(facts)


def _recheck(model: str | None) -> None:
    from llmcli.tuning.verdicts import forget

    removed = forget()
    console.notice(
        "forgot the engine measurements for this build and CPU"
        if removed
        else "no engine measurements were kept for this build and CPU"
    )
    if model is None:
        return
    from llmcli.engine.model import Model
    from llmcli.engine.types import LoadOptions
    from llmcli.resolve.with_progress import model_file

    with Model(LoadOptions(path=model_file(model), n_ctx=512), notify=console.notice):
        pass
