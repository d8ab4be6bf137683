"""What `/show` and `/stats` print: the settings, the model as loaded, its card, and
what the last answer measured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmcli.chat.commands import describe_thinking
from llmcli.chat.conversation import Conversation
from llmcli.chat.settings import format_settings
from llmcli.engine.reasoning import Thinking
from llmcli.engine.types import GenerationResult
from llmcli.errors import LlmcliError

if TYPE_CHECKING:
    from llmcli.engine.model import Model

_FINISH = {
    "stop": "finished",
    "length": "cut short by the token limit",
    "interrupted": "interrupted with Ctrl-C",
}


def stats_text(last: GenerationResult | None, n_ctx: int) -> str:
    r = last
    if r is None:
        return "no answer yet"
    cached = r.prompt_tokens - r.prompt_tokens_evaluated
    return (
        f"answer {r.completion_tokens} tokens at {r.generation_tps:.1f} tok/s · "
        f"first token after {r.ttft_s:.3f} s · "
        f"prompt {r.prompt_tokens} tokens ({cached} reused from the cache, "
        f"{r.prompt_tokens_evaluated} evaluated at {r.prompt_tps:.1f} tok/s) · "
        f"context {r.prompt_tokens + r.completion_tokens} of {n_ctx} tokens used · "
        f"{_FINISH[r.finish_reason]}"
    )


def show_lines(conv: Conversation, llm: Model) -> list[str]:
    """Current settings first, then the model as loaded, then its card."""
    from llmcli.engine.system_info import runs_on

    where = runs_on(llm.gpu_layers, llm.options.rpc)
    if where != "CPU":
        where += f" · {'all' if llm.gpu_layers < 0 else llm.gpu_layers} layers offloaded"
    rows = [
        ("model", conv.model or llm.name),
        ("system", conv.system or "(none: the model's default)"),
        ("settings", format_settings(conv.sampling)),
        ("thinking", _thinking_row(llm, conv.thinking)),
        ("context", f"{llm.n_ctx} tokens · {len(conv.turns)} messages in the conversation"),
        (
            "runs on",
            f"{where} · {llm.threads} thread{'' if llm.threads == 1 else 's'} · "
            f"loaded in {llm.load_s:.2f} s",
        ),
        *model_card_rows(llm),
    ]
    width = max(len(key) for key, _ in rows)
    return [f"{key.ljust(width)}  {value}" for key, value in rows]


def _thinking_row(llm: Model, thinking: Thinking) -> str:
    fmt = llm.reasoning
    if fmt is None:
        return "this model does not think"
    style = "<think> tags" if fmt.style == "tags" else "harmony channels"
    return f"{describe_thinking(thinking)} ({style})"


def model_card_rows(llm: Model) -> list[tuple[str, str]]:
    """The model card of `llmcli show`, read from the GGUF header; a file that cannot be
    read again (moved, or on a drive now gone) only shortens /show."""
    from llmcli.gguf_file.info import model_card
    from llmcli.ui.model_card import card_rows

    try:
        card = model_card(llm.options.path)
    except (LlmcliError, OSError):
        return [("file", str(llm.options.path))]
    return card_rows(card)
