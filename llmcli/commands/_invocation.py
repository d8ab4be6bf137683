"""What a command's options ask of the model, read once from its parsed parameters.

Every command that loads a model turns the same options into the same engine settings:
sampling, thinking, a chat template, a prompt template and its variables, where the
layers go. `Invocation` does it in one place, so that each command only says what it
does differently (its context size, a tokenizer-only load...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from llmcli.commands._defaults import from_command_line, loaded_template
from llmcli.commands._engine_flags import EngineFlags
from llmcli.commands._placement import placement
from llmcli.config import options_table
from llmcli.engine.reasoning import Thinking
from llmcli.engine.types import DEFAULT_CTX, LoadOptions, Sampling

if TYPE_CHECKING:
    from llmcli.engine.model import Model
    from llmcli.prompt_templates import PromptTemplate
    from llmcli.tools.toolbox import Toolbox


@dataclass(frozen=True)
class ToolRequest:
    """The tools a command line asks for; opened (files read, servers started) by
    `open`, once the prompt and the model file are known to be fine."""

    files: tuple[Path, ...] = ()
    servers: tuple[str, ...] = ()
    choice: str = "auto"
    max_steps: int = 1
    timeout: float = 60.0
    yes: bool = False

    def open(self) -> Toolbox | None:
        from llmcli.tools.toolbox import open_toolbox

        return open_toolbox(
            self.files,
            self.servers,
            choice=self.choice,
            max_steps=self.max_steps,
            timeout=self.timeout,
            yes=self.yes,
        )


@dataclass(frozen=True)
class Invocation:
    """One command's model settings, made by `from_context`. A command without an
    option gets what the engine would use without it."""

    # Read only where the command has every sampling option (`next` has a --top-k of
    # its own); the engine's defaults elsewhere.
    sampling: Sampling
    thinking: Thinking
    # The text of the --template file.
    chat_template: str | None
    # -t, loaded, and its --var values, checked against it.
    prompt_template: PromptTemplate | None
    variables: Mapping[str, str]
    # --rpc and --tensor-split as given, parsed by `load_options`: the prompt's and the
    # model file's errors still come first. None: the config file's workers.
    rpc: str | None
    tensor_split: str | None
    threads: int | None
    gpu_layers: int | None
    ctx: int | None
    # --cache-type-k/-v, --lora, --rope-scale, --yarn: checked, not yet applied.
    engine_flags: EngineFlags
    verbose: bool
    # --tool-file, --mcp and what they come with (run and chat).
    tools: ToolRequest
    # The options typed on the command line (or set through the environment), not
    # taken from the config file, a prompt template or a default.
    given: frozenset[str]

    @classmethod
    def from_context(cls, context: typer.Context, *, grammar: str | None = None) -> Invocation:
        """Read from the command's parameters by name: commands have different subsets
        of the options. UsageError for a --var, a --reasoning-effort or a --template
        that cannot be used, before any model loads."""
        params = context.params
        template, variables = _prompt_template(context)
        think = thinking(params.get("think"), params.get("reasoning_effort"))
        # click keeps a path as text; Typer makes the Path only for the function's call.
        template_file = params.get("template")
        chat_template = read_chat_template(Path(template_file) if template_file else None)
        generates = all(o.name in params for o in options_table.SAMPLING)
        threads = params.get("threads")
        return cls(
            sampling=sampling(params=params, stop=params.get("stop"), grammar=grammar)
            if generates
            else Sampling(),
            thinking=think,
            chat_template=chat_template,
            prompt_template=template,
            variables=variables,
            # Without --rpc the model stays on this machine: "" is no workers, where
            # None would read the config file's `rpc`.
            rpc=params.get("rpc", ""),
            tensor_split=params.get("tensor_split"),
            # bench's --threads is a list of counts, as text: it sets n_threads itself.
            threads=threads if isinstance(threads, int) else None,
            gpu_layers=params.get("gpu_layers"),
            ctx=params.get("ctx"),
            engine_flags=EngineFlags.from_params(params),
            verbose=bool(params.get("verbose", False)),
            given=frozenset(name for name in params if from_command_line(context, name)),
            tools=ToolRequest(
                files=tuple(Path(f) for f in params.get("tool_file") or ()),
                servers=tuple(params.get("mcp") or ()),
                choice=str(params.get("tool_choice") or "auto"),
                max_steps=int(params.get("max_steps") or 1),
                timeout=float(params.get("tool_timeout") or 60.0),
                yes=bool(params.get("yes", False)),
            ),
        )

    def load_options(self, path: Path, **overrides: Any) -> LoadOptions:
        """The engine's load options for `path`; `overrides` are the fields a command
        sets its own way (n_ctx, start_ctx, vocab_only, embedding...)."""
        ctx = self.ctx if self.ctx is not None else DEFAULT_CTX
        fields: dict[str, Any] = {
            "n_ctx": ctx,
            "n_threads": self.threads,
            "n_gpu_layers": self.gpu_layers,
            "verbose": self.verbose,
            "chat_template": self.chat_template,
            **placement(self.rpc, self.tensor_split),
            # The context a sequence may reach (--ctx), not a command's own n_ctx: YaRN's
            # factor is for the positions the answers use.
            **self.engine_flags.load_fields(path, ctx),
        }
        fields.update(overrides)
        return LoadOptions(path=path, **fields)

    def notices(self, llm: Model) -> list[str]:
        """What the loaded model cannot do of the thinking asked for: only when --think
        or --reasoning-effort was typed, as a config file's or prompt template's
        setting applies to whichever model runs."""
        if not self.given & {"think", "reasoning_effort"}:
            return []
        from llmcli.engine.reasoning import caveats

        return caveats(llm.reasoning, self.thinking)


def _prompt_template(context: typer.Context) -> tuple[PromptTemplate | None, dict[str, str]]:
    from llmcli import prompt_templates
    from llmcli.errors import UsageError

    template: PromptTemplate | None = loaded_template(context)
    variables = prompt_templates.parse_vars(context.params.get("var"))
    if template is None and variables:
        raise UsageError("--var needs a prompt template (-t NAME)")
    if template is not None:
        template.check(variables)
    return template, variables


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
