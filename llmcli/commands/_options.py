"""Options shared by every command that loads a model, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

from llmcli.engine.types import DEFAULT_CTX, LoadOptions, Sampling

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model: an alias (smollm2:135m), owner/repo[:QUANT], owner/repo/file.gguf, "
        "hf.co/owner/repo:QUANT or a local .gguf path. Default: $LLMCLI_MODEL, "
        "else the built-in default model.",
        show_default=False,
    ),
]
SystemOpt = Annotated[
    str | None, typer.Option("--system", "-s", help="System prompt.", show_default=False)
]
TemperatureOpt = Annotated[
    float,
    typer.Option(min=0.0, help="Sampling temperature; 0 picks the likeliest token (greedy)."),
]
TopPOpt = Annotated[float, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling.")]
TopKOpt = Annotated[
    int, typer.Option("--top-k", min=0, help="Sample from the K likeliest; 0: all.")
]
MinPOpt = Annotated[
    float,
    typer.Option("--min-p", min=0.0, max=1.0, help="Drop tokens below this share of the top."),
]
RepeatPenaltyOpt = Annotated[
    float,
    typer.Option("--repeat-penalty", min=0.0, help="Penalty for repeating recent tokens; 1: none."),
]
SeedOpt = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=2**31 - 1,
        help="Random seed for reproducible output. Default: a new one each run.",
        show_default=False,
    ),
]
MaxTokensOpt = Annotated[
    int | None,
    typer.Option(
        "--max-tokens",
        "-n",
        min=1,
        help="Stop after this many tokens. Default: until the model stops or the context is full.",
        show_default=False,
    ),
]
StopOpt = Annotated[
    list[str] | None,
    typer.Option("--stop", help="Stop when this text appears (repeatable).", show_default=False),
]
CtxOpt = Annotated[
    int, typer.Option("--ctx", "-c", min=16, help="Context window in tokens (prompt + answer).")
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        min=1, help="CPU threads. Default: every core this process may use.", show_default=False
    ),
]
GpuLayersOpt = Annotated[
    int | None,
    typer.Option(
        "--gpu-layers",
        min=-1,
        help="Layers to offload to the GPU; -1: all. Default: all when this build can "
        "offload, else 0.",
        show_default=False,
    ),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="Show llama.cpp's own log on stderr.")]
PlainOpt = Annotated[
    bool, typer.Option("--plain", help="Print raw text, not rendered Markdown, on a terminal.")
]


def sampling(
    *,
    temperature: float,
    top_p: float,
    top_k: int,
    min_p: float,
    repeat_penalty: float,
    seed: int | None,
    max_tokens: int | None,
    stop: list[str] | None,
    grammar: str | None = None,
) -> Sampling:
    return Sampling(
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        repeat_penalty=repeat_penalty,
        seed=seed,
        max_tokens=max_tokens,
        stop=tuple(stop or ()),
        grammar=grammar,
    )


DEFAULTS = Sampling()
DEFAULT_CONTEXT = DEFAULT_CTX

__all__ = ["DEFAULTS", "DEFAULT_CONTEXT", "LoadOptions", "sampling"]
