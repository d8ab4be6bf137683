"""Options shared by every command that loads a model, declared once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup, TyperOption

from llmcli.click_api import Command
from llmcli.config import options_table
from llmcli.engine.reasoning import Thinking
from llmcli.engine.types import DEFAULT_CTX, LoadOptions, Sampling

_BASE, _MODEL, _TEMPLATE = "llmcli.base_defaults", "llmcli.model", "llmcli.template"


def _model_defaults(ctx: typer.Context, value: str | None) -> str | None:
    """Make the config file's options for this model (`[models."<name>"]`) this
    command's defaults.

    Runs first (the option is eager), before the other options take their values, so
    that click's own order still decides: command line > prompt template > per-model
    config > global config (the root's default map) > built-in default.
    """
    if ctx.resilient_parsing:  # shell completion: nothing is run, stay fast
        return value
    ctx.meta[_MODEL] = value
    _refresh_defaults(ctx)
    return value


def _template_defaults(ctx: typer.Context, value: str | None) -> str | None:
    """Load the prompt template named by -t (eager, like -m) and make its settings this
    command's defaults, above the config file's."""
    if ctx.resilient_parsing or value is None:
        return value
    from llmcli import prompt_templates

    ctx.meta[_TEMPLATE] = prompt_templates.load(value)
    _refresh_defaults(ctx)
    return value


def loaded_template(ctx: typer.Context) -> Any:
    """The prompt template -t loaded (a PromptTemplate), or None."""
    return ctx.meta.get(_TEMPLATE)


def _refresh_defaults(ctx: typer.Context) -> None:
    """default map = global config, then this model's config, then the prompt template:
    recomputed whichever of -m and -t click handles first."""
    from llmcli.resolve import resolver

    if _BASE not in ctx.meta:
        ctx.meta[_BASE] = dict(ctx.default_map or {})
    template = ctx.meta.get(_TEMPLATE)
    ref = ctx.meta.get(_MODEL)
    if ref is None and template is not None:
        ref = template.model
    overrides = resolver.model_overrides(ref if ref is not None else resolver.default_ref())
    ctx.default_map = options_table.option_defaults(
        {p.name for p in ctx.command.params if p.name},
        config_keys(ctx.command),
        ctx.meta[_BASE],
        overrides,
        template.options if template is not None else None,
    )


def complete_template(incomplete: str) -> list[tuple[str, str]]:
    """Shell completion for -t: built-in and the user's prompt templates."""
    from llmcli import prompt_templates

    return [
        (name, summary)
        for name, summary in prompt_templates.names_with_summaries()
        if name.startswith(incomplete)
    ]


def complete_model(incomplete: str) -> list[tuple[str, str]]:
    """Shell completion for a model: cached models, the user's aliases, built-in ones."""
    from llmcli.completion import complete_model

    return complete_model(incomplete)


def complete_cached_model(incomplete: str) -> list[tuple[str, str]]:
    """Shell completion for a model in the cache (what `rm` can delete)."""
    from llmcli.completion import complete_model

    return complete_model(incomplete, cached_only=True)


def table_option(name: str) -> Any:
    """The `typer.Option` of a generation option, from its entry in the options table:
    flags, bounds and help are declared there once."""
    spec = options_table.BY_NAME[name]
    extra: dict[str, Any] = {}
    if spec.minimum is not None:
        extra["min"] = spec.minimum
    if spec.maximum is not None:
        extra["max"] = spec.maximum
    if spec.choices:
        extra["autocompletion"] = lambda: list(spec.choices)
    if spec.optional:
        # No built-in value to show: the help says what happens instead.
        extra["show_default"] = False
    return typer.Option(*spec.flags, help=spec.help, **extra)


MODEL_HELP = (
    "Model: an alias (smollm2:135m), owner/repo[:QUANT], owner/repo/file.gguf, "
    "hf.co/owner/repo:QUANT or a local .gguf path. Default: $LLMCLI_MODEL, else `model` "
    "in the config file, else the built-in default model."
)

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help=MODEL_HELP,
        show_default=False,
        is_eager=True,
        callback=_model_defaults,
        autocompletion=complete_model,
    ),
]
SystemOpt = Annotated[
    str | None, typer.Option("--system", "-s", help="System prompt.", show_default=False)
]
TemperatureOpt = Annotated[float, table_option("temperature")]
TopPOpt = Annotated[float, table_option("top_p")]
TopKOpt = Annotated[int, table_option("top_k")]
MinPOpt = Annotated[float, table_option("min_p")]
RepeatPenaltyOpt = Annotated[float, table_option("repeat_penalty")]
SeedOpt = Annotated[int | None, table_option("seed")]
MaxTokensOpt = Annotated[int | None, table_option("max_tokens")]
StopOpt = Annotated[
    list[str] | None,
    typer.Option("--stop", help="Stop when this text appears (repeatable).", show_default=False),
]
CtxOpt = Annotated[int, table_option("ctx")]
ThreadsOpt = Annotated[int | None, table_option("threads")]
GpuLayersOpt = Annotated[int | None, table_option("gpu_layers")]
ENV_RPC = "LLMCLI_RPC"
RpcOpt = Annotated[
    str | None,
    typer.Option(
        "--rpc",
        envvar=ENV_RPC,
        help="Split the model across these `llmcli worker`s (HOST:PORT[,HOST:PORT...]) and "
        "this machine: every layer is offloaded, spread by each device's free memory. "
        "Default: $LLMCLI_RPC, else `rpc` in the config file. Needs a build with RPC. "
        "Only on a trusted network: the protocol has no authentication.",
        show_default=False,
    ),
]
TensorSplitOpt = Annotated[
    str | None,
    typer.Option(
        "--tensor-split",
        help="Each device's share of the layers, in llama.cpp's device order (the workers "
        "of --rpc in turn, then local GPUs), e.g. 3,1. Default: by free memory.",
        show_default=False,
    ),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="Show llama.cpp's own log on stderr.")]
PlainOpt = Annotated[
    bool, typer.Option("--plain", help="Print raw text, not rendered Markdown, on a terminal.")
]
LookupOpt = Annotated[
    bool,
    typer.Option(
        "--lookup/--no-lookup",
        help="At --temperature 0, guess tokens from the prompt and the answer so far "
        "and check several in one step: faster when the answer quotes its input.",
    ),
]


ThinkOpt = Annotated[bool | None, table_option("think")]
LogOpt = Annotated[bool, table_option("log")]
EffortOpt = Annotated[str | None, table_option("reasoning_effort")]
ShowThinkingOpt = Annotated[
    bool,
    typer.Option(
        "--show-thinking",
        help="Stream the model's thinking to stderr. Default: on a terminal, only a "
        "'thought for N s' line; piped, nothing. stdout carries the answer alone.",
    ),
]
ChatTemplateOpt = Annotated[
    Path | None,
    typer.Option(
        "--template",
        help="Use this Jinja chat template file instead of the one in the model file.",
        show_default=False,
    ),
]
PromptTemplateOpt = Annotated[
    str | None,
    typer.Option(
        "--prompt-template",
        "-t",
        help="A prompt template: its system prompt, prompt and settings "
        "(see `llmcli templates list`).",
        show_default=False,
        is_eager=True,
        callback=_template_defaults,
        autocompletion=complete_template,
    ),
]
VarOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--var",
        help="A prompt template variable, NAME=VALUE (repeatable).",
        show_default=False,
    ),
]


def thinking(think: bool | None, effort: str | None) -> Thinking:
    """The user's thinking choice, with the level checked before any model loads."""
    from llmcli.engine.reasoning import EFFORT_LEVELS
    from llmcli.errors import UsageError

    if effort is not None:
        effort = effort.strip().lower()
        if effort not in EFFORT_LEVELS:
            raise UsageError(
                f"--reasoning-effort must be one of {', '.join(EFFORT_LEVELS)}, not {effort!r}"
            )
    return Thinking(enabled=think, effort=effort)


def read_chat_template(path: Path | None) -> str | None:
    """The text of a --template file; UsageError when it cannot be read."""
    if path is None:
        return None
    from llmcli.errors import UsageError

    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read chat template {path}: {why}") from exc
    if not text.strip():
        raise UsageError(f"chat template {path} is empty")
    return text


def _endpoints(value: str) -> tuple[str, ...]:
    endpoints = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        host, colon, port = part.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise typer.BadParameter(
                f"{part!r} is not HOST:PORT (e.g. 192.168.1.20:50052)", param_hint="--rpc"
            )
        endpoints.append(part)
    if not endpoints:
        raise typer.BadParameter("no worker given (HOST:PORT[,HOST:PORT...])", param_hint="--rpc")
    return tuple(dict.fromkeys(endpoints))


def _shares(value: str) -> tuple[float, ...]:
    try:
        shares = tuple(float(p) for p in value.split(",") if p.strip())
    except ValueError:
        shares = ()
    if not shares or any(s < 0 or s != s for s in shares) or not any(shares):
        raise typer.BadParameter(
            f"{value!r} is not a list of non-negative shares (e.g. 3,1)",
            param_hint="--tensor-split",
        )
    return shares


def placement(rpc: str | None, tensor_split: str | None) -> dict[str, Any]:
    """LoadOptions fields for --rpc (else $LLMCLI_RPC, else the config file's `rpc`) and
    --tensor-split."""
    if rpc is None:
        from llmcli import config

        rpc = config.load().rpc
    return {
        "rpc": _endpoints(rpc) if rpc else (),
        "tensor_split": _shares(tensor_split) if tensor_split else None,
    }


def sampling(
    *, params: Mapping[str, Any], stop: list[str] | None = None, grammar: str | None = None
) -> Sampling:
    """The engine's sampling settings from a command's parameter values (its
    `context.params`): every sampling option of the table, by name."""
    return Sampling(
        **{o.name: params[o.name] for o in options_table.SAMPLING},
        stop=tuple(stop or ()),
        grammar=grammar,
    )


def from_command_line(context: typer.Context, *names: str) -> bool:
    """True when one of these options was typed on the command line (or set through the
    environment), not taken from the config file, a prompt template or its default."""
    sources = (context.get_parameter_source(name) for name in names)
    return any(s is not None and s.name not in ("DEFAULT", "DEFAULT_MAP") for s in sources)


def config_keys(command: Command) -> set[str]:
    """The options of `command` that the config file may give defaults for: single-value
    options named like a config key (bench's `--threads` takes a list as text, and an
    int default still converts to it), and on/off flags for true/false keys."""
    from llmcli.config import OPTIONS

    return {
        p.name
        for p in command.params
        if isinstance(p, TyperOption)
        and p.name in OPTIONS
        and not p.multiple
        and (not p.is_flag or OPTIONS[p.name].kind is bool)
        and p.nargs == 1
    }


def config_default_map(group: TyperGroup, defaults: Mapping[str, object]) -> dict[str, Any]:
    """click's `default_map` for every command of `group`, from the config file's
    option defaults (click applies: command line > environment > default map >
    declared default)."""
    result: dict[str, Any] = {}
    for name, command in group.commands.items():
        values = options_table.option_defaults(
            {p.name for p in command.params if p.name}, config_keys(command), defaults
        )
        if isinstance(command, TyperGroup):
            values.update(config_default_map(command, defaults))
        if values:
            result[name] = values
    return result


DEFAULTS = Sampling()
DEFAULT_CONTEXT = DEFAULT_CTX

__all__ = ["DEFAULTS", "DEFAULT_CONTEXT", "LoadOptions", "sampling"]
