"""`llmcli run` on one prompt: stream the answer, report it, check its format."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcli import terminal
from llmcli.commands._result_json import result_json
from llmcli.commands.structured import OutputFormat
from llmcli.engine.repetition import REPEATING, until_repeating
from llmcli.engine.types import Decoding, GenerationResult, Sampling
from llmcli.errors import OutputInvalidError
from llmcli.prompting import thinking_budget_note
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.engine.generation import Generation
    from llmcli.engine.model import Model
    from llmcli.engine.sequence import Part
    from llmcli.engine.split import SplitReport
    from llmcli.engine.vision import MediaPrompt


def answer_one(
    llm: Model,
    tokens: list[int],
    sampling: Sampling,
    fmt: OutputFormat | None,
    decoding: Decoding,
    *,
    name: str,
    path: Path,
    json_out: bool,
    markdown: bool,
    show_thinking: bool,
    probs: bool,
    top_logprobs: int,
    stats: bool,
    remember: Callable[[GenerationResult], None] | None = None,
    media: MediaPrompt | None = None,
) -> None:
    """Answers the prompt, then reports it (--json, --stats), hands it to `remember`
    (the answer log), and checks its format. `media`: the prompt's attachments, whose
    `tokens` are `tokens`."""
    generation = llm.generate(
        tokens, sampling, decoding, logprobs=top_logprobs if probs else None, media=media
    )
    result = generation.result
    try:
        _answer(
            generation,
            sampling,
            json_out=json_out,
            markdown=markdown,
            show_thinking=show_thinking,
            probs=probs,
        )
    except KeyboardInterrupt:
        result.finish_reason = "interrupted"
        _report(result, name, path, json_out=json_out, stats=stats, probs=probs, split=llm.split)
        if remember is not None:
            remember(result)
        raise
    _report(result, name, path, json_out=json_out, stats=stats, probs=probs, split=llm.split)
    if remember is not None:
        remember(result)
    note = thinking_budget_note(result, sampling.max_tokens) or _ending_note(
        result, sampling.max_tokens, llm.n_ctx
    )
    if note:
        console.notice(note)
    _check_format(fmt, result, sampling.max_tokens)


def _ending_note(result: GenerationResult, max_tokens: int | None, n_ctx: int) -> str | None:
    """Why the answer ended, when it was not the model's own choice nor a limit the user
    set: a full context, or an answer that went round in circles."""
    if result.finish_reason == "repetition":
        return f"{REPEATING} (-n sets a length to let it run; --repeat-penalty 1.1 may avoid it)"
    by_limit = max_tokens is not None and result.completion_tokens >= max_tokens
    if result.finish_reason == "length" and not by_limit:
        return f"the answer was cut short: the context ({n_ctx} tokens) is full (raise --ctx)"
    return None


def show_prompt(llm: Model, tokens: list[int], *, json_out: bool) -> None:
    text = llm.prompt_text(tokens)
    if json_out:
        console.emit_json({"prompt": text, "token_count": len(tokens), "tokens": tokens})
        return
    # Exactly the prompt on stdout; a newline is added only for a terminal's sake.
    console.emit_raw(text + ("\n" if terminal.current().stdout_isatty else ""))
    console.info(f"{len(tokens)} tokens")


def _answer(
    generation: Generation,
    sampling: Sampling,
    *,
    json_out: bool,
    markdown: bool,
    show_thinking: bool,
    probs: bool,
) -> None:
    result = generation.result
    parts: Iterator[Part] = generation
    if sampling.max_tokens is None:  # a length the user set is theirs to fill
        parts = until_repeating(parts, result)
    if json_out:
        view = console.ThinkingView(show=show_thinking)
        for kind, text in parts:
            if kind == "thinking":
                view.write(text)
            else:
                view.done()
        view.done()
        return
    if probs and terminal.current().stdout_rich:
        from llmcli.ui import probs_view

        with probs_view.ProbsWriter(result.logprobs) as shaded:
            for kind, text in parts:
                if kind == "answer":
                    shaded.write(text)
        probs_view.print_legend()
        return
    with console.ReplyWriter(markdown=markdown, show_thinking=show_thinking) as writer:
        for kind, text in parts:
            writer.write(kind, text)


@contextmanager
def prompt_cache(llm: Model, enabled: bool) -> Iterator[Path | None]:
    """The prompt cache's folder, or None when it is off."""
    if not enabled:
        yield None
        return
    from llmcli.prompt_cache_files import prompt_cache_dir

    try:
        yield prompt_cache_dir()
    finally:
        llm.finish_saving()  # the state is being written in the background


def _check_format(
    fmt: OutputFormat | None, result: GenerationResult, max_tokens: int | None
) -> None:
    if fmt is None:
        return
    cut = result.finish_reason == "length"
    problem = fmt.problem_with(result.text, cut_off_at=result.completion_tokens if cut else None)
    if problem:
        hint = None
        if cut:  # by -n, else by a full context
            by_limit = max_tokens is not None and result.completion_tokens >= max_tokens
            hint = "raise --max-tokens" if by_limit else "raise --ctx"
        raise OutputInvalidError(problem, hint=hint)


def _report(
    result: GenerationResult,
    name: str,
    path: Path,
    *,
    json_out: bool,
    stats: bool,
    probs: bool = False,
    split: SplitReport | None = None,
) -> None:
    if json_out:
        data = as_json(result, name, path)
        if probs:
            from llmcli.engine.logprobs import content_json

            data["logprobs"] = content_json(result.logprobs)
        if split is not None:
            data["split"] = split.as_dict()
        console.emit_json(data)
    if stats:
        if split is not None:
            console.info(split.line())
        console.info(stats_line(result))


def as_json(result: GenerationResult, name: str, path: Path) -> dict[str, Any]:
    return {"model": name, "model_path": str(path), **result_json(result)}


def stats_line(result: GenerationResult) -> str:
    cached = result.prompt_tokens - result.prompt_tokens_evaluated
    reuse = f", {cached} cached" if cached > 0 else ""
    if result.prompt_cache_tokens:
        reuse += f" ({result.prompt_cache_tokens} from the prompt cache)"
    lookup = (
        f" · lookup kept {result.accepted_tokens} of {result.draft_tokens} drafted"
        if result.draft_tokens
        else ""
    )
    thought = f" ({result.reasoning_tokens} thinking)" if result.reasoning_tokens else ""
    images = f" ({result.image_tokens} of attachments)" if result.image_tokens else ""
    return (
        f"load {result.load_s:.2f} s · first token {result.ttft_s:.3f} s · "
        f"prompt {result.prompt_tokens} tokens{images}{reuse} at {result.prompt_tps:.1f} tok/s · "
        f"answer {result.completion_tokens} tokens{thought} at {result.generation_tps:.1f} tok/s"
        f"{lookup} · {result.finish_reason}"
    )
