"""Every generation option, declared once: its type, bounds, default, help and where
it may be given (command line, config file, chat `/set`, batch JSON lines).

The command-line options (`commands/_options.py`), the config file (`config/__init__.py`),
the chat's `/set` (`chat/settings.py`) and batch lines (`batch.py`) all read this table,
so a new option is one entry here, plus the engine code that uses it.

Pure and cheap to import: it is read on every start, `--help` included.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

# What an option's value may be (the config file's defaults, `/set`, batch fields).
OptionValue = int | float | bool | str

# The context window when neither the command line nor the config gives one.
DEFAULT_CTX = 4096
# The KV cache types llama.cpp takes for keys and values (--cache-type-k/-v); f16 is its
# default, and the quantized ones need the values' rows to be whole blocks.
CACHE_TYPES = ("f16", "q8_0", "q4_0")


@dataclass(frozen=True)
class Option:
    """One generation option. `name` is the command's parameter name and the config
    key (`--top-p` -> top_p); it is also the field of `Sampling` when `sampling` is set."""

    name: str
    kind: type[int] | type[float] | type[bool] | type[str]
    minimum: float | None
    maximum: float | None
    # The built-in default; None leaves the choice to the engine or the machine.
    default: OptionValue | None
    # The command-line flags and their `--help` text.
    flags: tuple[str, ...]
    help: str
    # For text options: the values allowed.
    choices: tuple[str, ...] = ()
    # Where else the option may be given: the config file (under `name`), chat's `/set`
    # and a batch JSON line (under the names given here; None: not there).
    in_config: bool = True
    set_name: str | None = None
    set_help: str = ""
    batch_field: str | None = None
    # A field of the engine's `Sampling`, built from the command's values by name.
    sampling: bool = False
    # The value's name in `--help` (FILE); None: click's, from the type.
    metavar: str | None = None

    @property
    def optional(self) -> bool:
        """None is a value ("none" in chat): the default is left to the engine."""
        return self.default is None


def _sampler(
    name: str,
    kind: type[int] | type[float],
    minimum: float,
    maximum: float | None,
    default: float | None,
    flags: tuple[str, ...],
    help: str,
    set_help: str,
) -> Option:
    """A sampling option: on the command line, in the config file, in `/set` and in
    batch lines, all under its own name."""
    return Option(
        name,
        kind,
        minimum,
        maximum,
        default,
        flags,
        help,
        set_name=name,
        set_help=set_help,
        batch_field=name,
        sampling=True,
    )


# In the order `config set --help` and `/set` list them.
TABLE: tuple[Option, ...] = (
    _sampler(
        "temperature",
        float,
        0.0,
        None,
        0.8,
        ("--temperature",),
        "Sampling temperature; 0 picks the likeliest token (greedy).",
        "randomness; 0 picks the likeliest token",
    ),
    _sampler("top_p", float, 0.0, 1.0, 0.95, ("--top-p",), "Nucleus sampling.", "nucleus sampling"),
    _sampler(
        "top_k",
        int,
        0,
        None,
        40,
        ("--top-k",),
        "Sample from the K likeliest; 0: all.",
        "sample from the K likeliest; 0: all",
    ),
    _sampler(
        "min_p",
        float,
        0.0,
        1.0,
        0.05,
        ("--min-p",),
        "Drop tokens below this share of the top.",
        "drop tokens below this share of the top",
    ),
    _sampler(
        "repeat_penalty",
        float,
        0.0,
        None,
        1.0,
        ("--repeat-penalty",),
        "Penalty for repeating recent tokens; 1: none.",
        "penalty for repeating; 1: none",
    ),
    _sampler(
        "max_tokens",
        int,
        1,
        None,
        # None: until the context is full.
        None,
        ("--max-tokens", "-n"),
        "Stop after this many tokens. Default: until the model stops or the context is full.",
        "longest answer; none: until the context is full",
    ),
    _sampler(
        "seed",
        int,
        0,
        2**31 - 1,
        # None: a fresh random seed per call (the engine would otherwise reuse one).
        None,
        ("--seed",),
        "Random seed for reproducible output. Default: a new one each run.",
        "random seed; none: a new one each answer",
    ),
    Option(
        "ctx",
        int,
        16,
        None,
        DEFAULT_CTX,
        ("--ctx", "-c"),
        "Context window in tokens (prompt + answer).",
    ),
    Option(
        "threads",
        int,
        1,
        None,
        None,
        ("--threads",),
        "CPU threads. Default: the usable cores other processes are not keeping busy.",
    ),
    Option(
        "gpu_layers",
        int,
        -1,
        None,
        None,
        ("--gpu-layers",),
        "Layers to offload to the GPU; -1: all. Default: all when this build can offload, else 0.",
    ),
    Option(
        "cache_type_k",
        str,
        None,
        None,
        "f16",
        ("--cache-type-k",),
        "The KV cache's type for keys: f16, or q8_0 / q4_0 (about half / a quarter of "
        "the memory, slightly less exact).",
        choices=CACHE_TYPES,
    ),
    Option(
        "cache_type_v",
        str,
        None,
        None,
        "f16",
        ("--cache-type-v",),
        "The KV cache's type for values: f16, q8_0 or q4_0. A quantized V cache needs "
        "flash attention (on unless the backend lacks it).",
        choices=CACHE_TYPES,
    ),
    Option(
        "lora",
        str,
        None,
        None,
        None,
        ("--lora",),
        "Apply this LoRA adapter (a GGUF made for this model, e.g. by llama.cpp's "
        "convert_lora_to_gguf.py).",
        metavar="FILE",
    ),
    Option(
        "lora_scale",
        float,
        -10.0,
        10.0,
        1.0,
        ("--lora-scale",),
        "How strongly --lora applies; 0: not at all.",
    ),
    Option(
        "rope_scale",
        float,
        1.0,
        128.0,
        None,
        ("--rope-scale",),
        "Stretch the model's positions this many times, to use a context longer than "
        "the trained one (linear RoPE scaling; with --yarn, YaRN's). Default: the model's.",
    ),
    Option(
        "yarn",
        bool,
        None,
        None,
        False,
        ("--yarn/--no-yarn",),
        "Extend the context with YaRN RoPE scaling, which degrades less than linear: by "
        "--rope-scale, else by --ctx over the model's trained context.",
    ),
    Option(
        "think",
        bool,
        None,
        None,
        None,
        ("--think/--no-think",),
        "Let a reasoning model think before answering, or not. Default: the model's "
        "own default (config key `think`).",
    ),
    Option(
        "reasoning_effort",
        str,
        None,
        None,
        None,
        ("--reasoning-effort",),
        "How hard a model with thinking levels (gpt-oss) thinks: low, medium or high.",
        choices=("low", "medium", "high"),
    ),
    Option(
        "max_steps",
        int,
        1,
        100,
        5,
        ("--max-steps",),
        "With tools: the most rounds of tool calls in one answer; then the model "
        "answers with tools off, and a notice says so.",
    ),
    Option(
        "log",
        bool,
        None,
        None,
        True,
        ("--log/--no-log",),
        "Keep the answer in the answer log (`llmcli logs`). LLMCLI_LOG=0, or the "
        "config's `log = false` (`llmcli logs off`), turns it off by default.",
    ),
)

BY_NAME: dict[str, Option] = {o.name: o for o in TABLE}
CONFIG: dict[str, Option] = {o.name: o for o in TABLE if o.in_config}
SET: dict[str, Option] = {o.set_name: o for o in TABLE if o.set_name}
BATCH: dict[str, Option] = {o.batch_field: o for o in TABLE if o.batch_field}
SAMPLING: tuple[Option, ...] = tuple(o for o in TABLE if o.sampling)


def option_defaults(
    params: Collection[str],
    configurable: Collection[str],
    config: Mapping[str, object],
    model: Mapping[str, object] | None = None,
    template: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Where an option's value comes from, decided in one place: what a command falls
    back on when an option is not on its command line.

    The order is: command line (click keeps it above these) > prompt template >
    this model's `[models."<name>"]` table > the config file > the built-in default
    (the option's own, below these). `configurable` are the command's parameters the
    config file may set (`commands._defaults.config_keys`); a template may set any of
    `params`.
    """
    merged: dict[str, object] = {k: v for k, v in config.items() if k in configurable}
    merged.update({k: v for k, v in (model or {}).items() if k in configurable})
    merged.update({k: v for k, v in (template or {}).items() if k in params})
    return merged
