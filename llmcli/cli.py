"""The command-line entry point: builds the app, and maps every error to an exit code."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated

import typer

from llmcli import __version__, config
from llmcli.commands import (
    bench,
    embed,
    list_models,
    next_token,
    pull,
    rm,
    run,
    show,
    similarity,
    tokenize,
)
from llmcli.errors import ExitCode, LlmcliError, OutputClosed

app = typer.Typer(
    name="llmcli",
    help="Run large language models on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            engine = version("llama-cpp-python")
        except PackageNotFoundError:
            engine = "not installed"
        typer.echo(f"llmcli {__version__}\nllama-cpp-python {engine}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show versions and exit."),
    ] = False,
) -> None:
    """Run large language models on your own machine."""


# Commands, in the order `llmcli --help` lists them. One line each.
run.register(app)
pull.register(app)
list_models.register(app)
rm.register(app)
bench.register(app)
show.register(app)
tokenize.register(app)
embed.register(app)
similarity.register(app)
next_token.register(app)


def _quiet_stdout() -> None:
    """After the reader of stdout has gone, make the interpreter's final flush silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _exit_code(exc: BaseException) -> tuple[int, str | None]:
    """The one table from exceptions to (exit code, message for stderr)."""
    if isinstance(exc, LlmcliError):
        return exc.exit_code, str(exc)
    if isinstance(exc, (OutputClosed, BrokenPipeError)):
        return ExitCode.BROKEN_PIPE, None
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED, None
    if isinstance(exc, typer.Abort):
        return ExitCode.ERROR, "aborted"
    if isinstance(exc, typer.TyperException):  # the framework's usage errors
        message = getattr(exc, "format_message", lambda: str(exc))()
        code = int(getattr(exc, "exit_code", ExitCode.USAGE))
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            message = f"{message} (see '{ctx.command_path} --help')"
        return code, message
    if isinstance(exc, MemoryError):
        return ExitCode.ERROR, "out of memory"
    if isinstance(exc, OSError) and exc.errno == 28:
        return ExitCode.DISK, f"no space left on device: {exc.filename or ''}".rstrip(": ")
    return ExitCode.ERROR, f"unexpected error: {type(exc).__name__}: {exc}"


def main(argv: Sequence[str] | None = None) -> None:
    from llmcli.ui import console

    try:
        result = app(args=list(argv) if argv is not None else None, standalone_mode=False)
        code = int(result) if isinstance(result, int) else 0
    except (Exception, KeyboardInterrupt) as exc:
        code, message = _exit_code(exc)
        if config.debug_enabled():
            traceback.print_exc()
        if message:
            console.error(message)
    if code == ExitCode.BROKEN_PIPE:
        _quiet_stdout()
    sys.exit(code)
