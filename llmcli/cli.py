"""The command-line entry point: builds the app, and maps every error to an exit code."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from functools import cache
from typing import Annotated, NoReturn

import typer
from typer.core import TyperGroup

from llmcli import __version__, _ctrl_c_raises, config
from llmcli.errors import ExitCode, LlmcliError, OutputClosed


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
    from llmcli.commands._defaults import config_default_map
    from llmcli.ui import console

    settings = config.load()
    for warning in settings.warnings:
        console.notice(f"warning: {warning}")
    # The config's option defaults become click's default map: a command-line option
    # still wins, and `--help` shows the configured defaults.
    if isinstance(ctx.command, TyperGroup):
        ctx.default_map = config_default_map(ctx.command, settings.defaults)


# Each command's name, as typed, and the module of llmcli.commands that registers it, in
# the order `llmcli --help` lists them. A command line that names a command builds the
# app with that module alone: importing and building all twenty takes about 80 ms, more
# than the rest of start-up (tests/test_cli_lazy.py checks this table against the app).
COMMANDS: dict[str, str] = {
    "run": "run",
    "pull": "pull",
    "list": "list_models",
    "ls": "list_models",
    "rm": "rm",
    "bench": "bench",
    "cache": "cache",
    "show": "show",
    "fit": "fit",
    "chat": "chat",
    "serve": "serve",
    "ps": "ps",
    "stop": "ps",
    "worker": "worker",
    "tokenize": "tokenize",
    "embed": "embed",
    "similarity": "similarity",
    "rerank": "rerank",
    "next": "next_token",
    "attention": "attention",
    "lens": "lens",
    "explain": "explain",
    "templates": "templates_cmd",
    "logs": "logs",
    "config": "config_cmd",
    "doctor": "doctor",
    "completion": "completion_cmd",
}


# What `llmcli --help` says of each command, in one line that fits beside its name on a
# terminal 60 columns wide (click cuts longer ones with "..."); each command's own help
# says the rest. `ls` is `list`'s hidden twin.
SUMMARIES: dict[str, str] = {
    "run": "Answer one prompt, streaming to stdout",
    "pull": "Download a model into the cache",
    "list": "List cached models and the starter",
    "rm": "Delete models from the cache",
    "bench": "Measure prompt and generation speed",
    "cache": "Show or clear the prompt cache",
    "show": "Show a model's card and chat template",
    "fit": "Check a model fits in memory, pre-download",
    "chat": "Chat with a model in the terminal",
    "serve": "Serve a model over HTTP (OpenAI API)",
    "ps": "Show what a running server has loaded",
    "stop": "Unload a model from a running server",
    "worker": "Lend this machine to `--rpc` runs",
    "tokenize": "Show how a model cuts text into tokens",
    "embed": "Turn texts into vectors (embeddings)",
    "similarity": "Compare texts by their embeddings",
    "rerank": "Order documents by relevance to a query",
    "next": "Show the likeliest next tokens",
    "attention": "Show which tokens attend to which",
    "lens": "Show each layer's guess (logit lens)",
    "explain": "Explain how the model answers, step by step",
    "templates": "Prompt templates for run -t and chat -t",
    "logs": "Show, search and prune the answer log",
    "config": "Show or change the config file",
    "doctor": "Check the setup: engine, GPU, cache, Hub",
    "completion": "Print a shell completion script",
}

EPILOG = """\b
Examples:
  llmcli run "Why is the sky blue?"
  llmcli run -m starter "Say hi"
  cat notes.md | llmcli run "Summarize this"
  llmcli chat -m smollm2
  llmcli list
  llmcli COMMAND --help
"""


def build_app(command: str | None = None) -> typer.Typer:
    """The app with every command, or with `command`'s alone (help, usage errors and
    completion need them all)."""
    typer_app = typer.Typer(
        name="llmcli",
        help="Run large language models on your own machine.",
        epilog=EPILOG,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    typer_app.callback()(_root)
    modules = [COMMANDS[command]] if command in COMMANDS else dict.fromkeys(COMMANDS.values())
    for module in modules:
        importlib.import_module(f"llmcli.commands.{module}").register(typer_app)
    _examples_as_written(typer_app)
    for info in typer_app.registered_commands:
        info.short_help = SUMMARIES.get(info.name or "", info.short_help)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            name = group.name or group.typer_instance.info.name
            group.typer_instance.info.short_help = SUMMARIES.get(str(name))
    return typer_app


@cache
def full_app() -> typer.Typer:
    return build_app()


def __getattr__(name: str) -> typer.Typer:
    """`llmcli.cli.app`: the app with every command, built when first asked for."""
    if name == "app":
        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    return ExitCode.ERROR, (
        f"unexpected error: {type(exc).__name__}: {exc} "
        "(LLMCLI_DEBUG=1 shows where; please report it)"
    )


def _complete(instruction: str) -> int:
    """Answer a shell completion script (see llmcli.completion); never a traceback in
    the middle of someone's command line."""
    from llmcli.completion import protocol

    try:
        return protocol.respond(typer.main.get_command(full_app()), instruction, {})
    except BrokenPipeError:
        _quiet_stdout()
        return ExitCode.BROKEN_PIPE
    except Exception:
        if config.debug_enabled():
            import traceback

            traceback.print_exc()
        return 1


def main(argv: Sequence[str] | None = None) -> None:
    from llmcli.click_api import NoArgsIsHelpError
    from llmcli.completion.protocol import requested
    from llmcli.completion.scripts import PROG_NAME
    from llmcli.ui import console

    instruction = requested()
    if instruction is not None:
        sys.exit(_complete(instruction))
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        _ctrl_c_raises()  # until here Ctrl-C ends the program quietly (llmcli/__init__.py)
        typer_app = build_app(args[0] if args else None)
        # A fixed program name: `python -m llmcli` is still `llmcli` in usage lines.
        result = typer_app(
            args=args,
            prog_name=PROG_NAME,
            standalone_mode=False,
        )
        code = int(result) if isinstance(result, int) else 0
    except NoArgsIsHelpError as exc:
        # `llmcli` or `llmcli templates` alone: the help, as ollama does, not an error.
        console.emit_text(exc.ctx.get_help())
        code = ExitCode.OK
    except (Exception, KeyboardInterrupt) as exc:
        code, message = _exit_code(exc)
        if config.debug_enabled():
            import traceback

            traceback.print_exc()
        if message:
            console.error(message)
    if code == ExitCode.BROKEN_PIPE:
        _quiet_stdout()
    _exit(code)


def _exit(code: int) -> NoReturn:
    # CPython remembers a KeyboardInterrupt that once escaped an exec() or eval() of a
    # string (dataclasses and namedtuple build their methods so, as modules import),
    # even after it was caught, and then ends the process by SIGINT in place of the
    # code asked for: Ctrl-C at the wrong moment would not exit 130. An evaluation of a
    # string that succeeds forgets it.
    exec("None")
    sys.exit(code)
