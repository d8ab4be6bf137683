"""`llmcli run` with tools (--tool-file, --mcp): the answer comes from the tool loop.
Calls and their results show on stderr; stdout carries the answer alone, or with
--json one object that holds every call, its arguments and result, and the answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from llmcli.commands.run_answer import as_json, stats_line
from llmcli.engine.reasoning import Kind
from llmcli.engine.types import START_CTX, Decoding, GenerationResult, Message, Sampling
from llmcli.errors import UsageError
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.commands._invocation import Invocation
    from llmcli.engine.model import Model
    from llmcli.engine.reasoning import Thinking
    from llmcli.remember import AnswerLog
    from llmcli.tools.loop import Write
    from llmcli.tools.toolbox import Toolbox


def answer_with_tools(
    llm: Model,
    messages: Sequence[Message],
    box: Toolbox,
    sampling: Sampling,
    *,
    thinking: Thinking,
    lookup: bool,
    name: str,
    path: Path,
    json_out: bool,
    markdown: bool,
    show_thinking: bool,
    stats: bool,
    remember: Callable[[GenerationResult], None] | None = None,
) -> None:
    from llmcli.tools import loop

    done = loop.answer_with_tools(
        llm,
        list(messages),
        box,
        sampling,
        thinking=thinking,
        decoding=Decoding(lookup=lookup),
        writer=_writer(json_out=json_out, markdown=markdown, show_thinking=show_thinking),
    )
    result = done.result
    if json_out:
        data = as_json(result, name, path)
        data["tool_calls"] = [c.as_json() for c in done.calls]
        data["steps"] = done.steps
        data["usage_all_steps"] = {
            "prompt_tokens": done.prompt_tokens,
            "completion_tokens": done.completion_tokens,
        }
        console.emit_json(data)
    if stats:
        console.info(stats_line(result))
    if remember is not None:
        remember(result)


def _writer(
    *, json_out: bool, markdown: bool, show_thinking: bool
) -> Callable[[], AbstractContextManager[Write]]:
    @contextmanager
    def opened() -> Iterator[Write]:
        if json_out:  # the answer goes out in the JSON object, at the end
            view = console.ThinkingView(show=show_thinking)

            def thinking_only(kind: Kind, text: str) -> None:
                if kind == "thinking":
                    view.write(text)
                else:
                    view.done()

            try:
                yield thinking_only
            finally:
                view.done()
            return
        with console.ReplyWriter(markdown=markdown, show_thinking=show_thinking) as writer:
            yield writer.write

    return opened


def run_with_tools(
    invocation: Invocation,
    path: Path,
    text: str,
    system: str | None,
    history: Sequence[Message],
    *,
    name: str,
    answer_log: AnswerLog,
    json_out: bool,
    markdown: bool,
    show_thinking: bool,
    stats: bool,
    lookup: bool,
) -> None:
    """Open the tools (MCP servers start before the model loads: one that cannot start
    fails fast), load the model, answer, and end the servers whatever happens."""
    import time

    from llmcli.engine.model import Model
    from llmcli.prompting import PromptBuilder

    box = invocation.tools.open()
    assert box is not None  # the caller saw --tool-file or --mcp
    load = invocation.load_options(path, start_ctx=START_CTX)
    with box, Model(load, notify=console.notice) as llm:
        builder = PromptBuilder(
            llm,
            raw=False,
            special=False,
            thinking=invocation.thinking,
            template=invocation.prompt_template,
            variables=invocation.variables,
        )
        if builder.completion:
            raise UsageError("tools need a model with a chat template; this one has none")
        for note in invocation.notices(llm):
            console.notice(note)
        started = time.perf_counter()

        def remember(result: GenerationResult) -> None:
            answer_log.add(
                prompt=text,
                system=system,
                result=result,
                sampling=invocation.sampling,
                started=started,
                interrupted=result.finish_reason == "interrupted",
            )

        try:
            answer_with_tools(
                llm,
                builder.messages(text, system, history),
                box,
                invocation.sampling,
                thinking=invocation.thinking,
                lookup=lookup,
                name=name,
                path=path,
                json_out=json_out,
                markdown=markdown,
                show_thinking=show_thinking,
                stats=stats,
                remember=remember,
            )
        finally:
            failure = answer_log.close()
            if failure:
                console.notice(f"this answer was not logged: {failure}")
