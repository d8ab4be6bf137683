"""The command-line entry point: builds the app, and maps every error to an exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated

import typer
from typer.core import TyperGroup

from llmcli import __version__, config
from llmcli.commands import (
    attention,
    bench,
    cache,
    chat,
    completion_cmd,
    config_cmd,
    doctor,
    embed,
    lens,
    list_models,
    next_token,
    pull,
    rm,
    run,
    serve,
    show,
    similarity,
    templates_cmd,
    tokenize,
    worker,
)
from llmcli.errors import ExitCode, LlmcliError, OutputClosed

app = typer.Typer(
    name="llmcli",
    help="Run large language models on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
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


# These work with a broken config file: they are how one finds, inspects and fixes it.
_WITHOUT_CONFIG = {"config", "doctor", "completion"}


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show versions and exit."),
    ] = False,
) -> None:
    """Run large language models on your own machine."""
    if ctx.invoked_subcommand in _WITHOUT_CONFIG or ctx.resilient_parsing:
        return
    from llmcli.commands._options import config_default_map
    from llmcli.ui import console

    settings = config.load()
    for warning in settings.warnings:
        console.notice(f"warning: {warning}")
    # The config's option defaults become click's default map: a command-line option
    # still wins, and `--help` shows the configured defaults.
    if isinstance(ctx.command, TyperGroup):
        ctx.default_map = config_default_map(ctx.command, settings.defaults)


# Commands, in the order `llmcli --help` lists them. One line each.
run.register(app)
pull.register(app)
list_models.register(app)
rm.register(app)
bench.register(app)
cache.register(app)
show.register(app)
chat.register(app)
serve.register(app)
worker.register(app)
tokenize.register(app)
embed.register(app)
similarity.register(app)
next_token.register(app)
attention.register(app)
lens.register(app)
templates_cmd.register(app)
config_cmd.register(app)
doctor.register(app)
completion_cmd.register(app)


def _examples_as_written(typer_app: typer.Typer) -> None:
    """Help is plain click text (Rich's help renderer alone costs a third of start-up);
    mark each epilog so click prints the examples line by line instead of rewrapping."""
    for info in typer_app.registered_commands:
        if info.epilog:
            lines = [line for line in info.epilog.splitlines() if line.strip()]
            info.epilog = "\b\n" + "\n".join(lines)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _examples_as_written(group.typer_instance)
            info_epilog = group.typer_instance.info.epilog
            if isinstance(info_epilog, str) and info_epilog:
                lines = [line for line in info_epilog.splitlines() if line.strip()]
                group.typer_instance.info.epilog = "\b\n" + "\n".join(lines)


_examples_as_written(app)


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


def _complete(instruction: str) -> int:
    """Answer a shell completion script (see llmcli.completion); never a traceback in
    the middle of someone's command line."""
    from llmcli.completion import protocol

    try:
        return protocol.respond(typer.main.get_command(app), instruction, {})
    except BrokenPipeError:
        _quiet_stdout()
        return ExitCode.BROKEN_PIPE
    except Exception:
        if config.debug_enabled():
            import traceback

            traceback.print_exc()
        return 1


def main(argv: Sequence[str] | None = None) -> None:
    from llmcli.completion.protocol import requested
    from llmcli.completion.scripts import PROG_NAME
    from llmcli.ui import console

    instruction = requested()
    if instruction is not None:
        sys.exit(_complete(instruction))
    try:
        # A fixed program name: `python -m llmcli` is still `llmcli` in usage lines.
        result = app(
            args=list(argv) if argv is not None else None,
            prog_name=PROG_NAME,
            standalone_mode=False,
        )
        code = int(result) if isinstance(result, int) else 0
    except (Exception, KeyboardInterrupt) as exc:
        code, message = _exit_code(exc)
        if config.debug_enabled():
            import traceback

            traceback.print_exc()
        if message:
            console.error(message)
    if code == ExitCode.BROKEN_PIPE:
        _quiet_stdout()
    sys.exit(code)
