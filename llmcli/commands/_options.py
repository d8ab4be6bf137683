"""Options shared by every command that loads a model, declared once.

Where their defaults come from is `_defaults`; what their values add up to for the
engine, `_invocation`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from llmcli.commands._defaults import model_defaults, template_defaults
from llmcli.config import options_table
from llmcli.engine.types import DEFAULT_CTX, Sampling


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
    if spec.metavar:
        extra["metavar"] = spec.metavar
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
        callback=model_defaults,
        autocompletion=complete_model,
    ),
]
# A model named as an argument (show, fit) rather than with -m.
ModelArg = Annotated[
    str | None,
    typer.Argument(
        metavar="MODEL",
        autocompletion=complete_model,
        help="An alias, owner/repo[:QUANT], owner/repo/file.gguf or a local .gguf path. "
        "Default: $LLMCLI_MODEL, else the built-in default model.",
        show_default=False,
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
CacheTypeKOpt = Annotated[str, table_option("cache_type_k")]
CacheTypeVOpt = Annotated[str, table_option("cache_type_v")]
LoraOpt = Annotated[str | None, table_option("lora")]
LoraScaleOpt = Annotated[float, table_option("lora_scale")]
RopeScaleOpt = Annotated[float | None, table_option("rope_scale")]
YarnOpt = Annotated[bool, table_option("yarn")]
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
AttachOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--attach",
        "-a",
        help="Attach an image (PNG, JPEG, WebP) or, where the projector takes audio, a WAV "
        "or MP3 file (repeatable): a path or an http(s) URL. Needs a model with a projector "
        "(see --mmproj).",
        show_default=False,
    ),
]
MmprojOpt = Annotated[
    Path | None,
    typer.Option(
        "--mmproj",
        help="The projector (mmproj GGUF) that lets the model read attachments. Default: "
        "an mmproj-*.gguf file in the model file's folder.",
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
        "and check several in one step: faster when the answer quotes its input. The "
        "answer is plain decoding's up to near-ties (README: Speed-ups).",
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
        callback=template_defaults,
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


DEFAULTS = Sampling()
DEFAULT_CONTEXT = DEFAULT_CTX


# -- tools (run and chat) ----------------------------------------------------------------

ToolFileOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--tool-file",
        help="Let the model call the functions of this Python file (repeatable): each public "
        "function with type hints and a docstring is a tool; its arguments' JSON schema "
        "comes from the hints.",
        show_default=False,
    ),
]
McpOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--mcp",
        help='Let the model call the tools of this MCP server (repeatable): "COMMAND ARGS" '
        "starts it as a child process (split like a shell would, never run by one), an "
        "http(s):// URL connects over streamable HTTP.",
        show_default=False,
    ),
]
ToolChoiceOpt = Annotated[
    str,
    typer.Option(
        "--tool-choice",
        help="With tools: auto (the model decides), none, required (it must call one first), "
        "or a tool's name (it must call that one first).",
    ),
]
MaxStepsOpt = Annotated[int, table_option("max_steps")]
YesOpt = Annotated[
    bool,
    typer.Option(
        "--yes",
        help="Run the model's tool calls without asking. Without it each call is asked about "
        "on the terminal, and refused (exit code 15) when there is none.",
    ),
]
ToolTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--tool-timeout",
        min=0.1,
        help="Seconds a tool call may take; past that the model reads that it timed out.",
    ),
]
DEFAULT_TOOL_TIMEOUT = 60.0
DEFAULT_MAX_STEPS = int(options_table.BY_NAME["max_steps"].default or 5)
