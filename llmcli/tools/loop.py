"""The tool loop of one answer: generate; read the calls in the answer; ask about and
run each; give the model its results; generate again, until it answers without a call
or --max-steps rounds of calls have run (then it answers once more, with tools off).

"required" and a named --tool-choice constrain the first round only: after its results
the model may answer (choice "auto"), as OpenAI's clients usually arrange.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmcli.engine.reasoning import CLOSE_TAG, Kind, Thinking
from llmcli.engine.tool_calls import CallParser, ToolCall, call_format
from llmcli.engine.types import Decoding, GenerationResult, Message, Sampling
from llmcli.tools.toolbox import CallRecord, Toolbox
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.engine.model import Model
    from llmcli.engine.tool_plan import ToolPlan

Write = Callable[[Kind, str], None]
# Opens the view of one round's text: its thinking and answer stream into the function
# it gives, and it closes before any call is asked about or run.
OpenWriter = Callable[[], AbstractContextManager[Write]]


@dataclass
class LoopResult:
    # The last generation, its text the answer without any call markup.
    result: GenerationResult
    calls: list[CallRecord] = field(default_factory=list)
    # The messages added to the conversation: assistant turns with calls, tool results,
    # and the final answer.
    messages: list[Message] = field(default_factory=list)
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def answer_with_tools(
    llm: Model,
    messages: list[Message],
    box: Toolbox,
    sampling: Sampling,
    *,
    thinking: Thinking,
    decoding: Decoding,
    writer: OpenWriter,
) -> LoopResult:
    """Run the loop on `messages` (left as they are); each round's thinking and answer
    text stream into a `writer` of its own, never the calls."""
    fmt = call_format(llm.tokenizer.chat_template)
    if fmt.described and not box.noted:
        box.noted = True
        console.notice(
            "this model's chat template does not render tools: they are described to it "
            "in a system message"
        )
    done = LoopResult(GenerationResult())
    history = list(messages)
    choice = box.choice
    while True:
        if done.steps >= box.max_steps and choice != "none":
            rounds = f"{done.steps} round{'s' if done.steps != 1 else ''}"
            console.notice(
                f"the model has made {rounds} of tool calls (--max-steps {box.max_steps}): "
                "it answers now, with tools off"
            )
            choice = "none"
        plan = box.plan(fmt, choice)
        text, calls, result = _round(llm, history, plan, sampling, thinking, decoding, writer)
        done.result = result
        done.prompt_tokens += result.prompt_tokens
        done.completion_tokens += result.completion_tokens
        if not calls or result.finish_reason not in ("stop", "length"):
            result.text = text
            done.messages.append(Message(role="assistant", content=text))
            return done
        turn = Message(role="assistant", content=text)
        turn["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": a}}
            for c, a in ((c, json.loads(c.arguments)) for c in calls)
        ]
        added = [turn]
        for call in calls:
            record = box.run(call)
            done.calls.append(record)
            reply = Message(role="tool", content=record.result)
            reply["tool_call_id"] = call.id
            added.append(reply)
        history += added
        done.messages += added
        done.steps += 1
        if choice != "none":
            choice = "auto"


def _round(
    llm: Model,
    messages: list[Message],
    plan: ToolPlan,
    sampling: Sampling,
    thinking: Thinking,
    decoding: Decoding,
    writer: OpenWriter,
) -> tuple[str, list[ToolCall], GenerationResult]:
    from llmcli.engine.tool_plan import prompt_inputs

    shown, tools = prompt_inputs(plan, messages)
    if plan.forced:
        # The grammar holds the answer to calls from its first token: no thinking (a
        # template that opens the thinking block would make the call thinking text).
        thinking = Thinking(enabled=False)
    tokens = llm.chat_tokens(shown, thinking=thinking, tools=tools)
    gbnf = plan.grammar()
    if gbnf is not None:
        trigger = None
        if not plan.forced:
            splitter = llm.splitter(tokens)
            opened = splitter is not None and splitter.thinking
            trigger = plan.fmt.lazy_trigger(after=CLOSE_TAG if opened else None)
        sampling = dataclasses.replace(sampling, grammar=gbnf, grammar_trigger=trigger)
    parser = CallParser(plan.fmt, limit=plan.limit) if plan.choice != "none" else None
    content: list[str] = []
    with writer() as write, llm.generate(tokens, sampling, decoding) as generation:
        for kind, piece in generation:
            if kind == "thinking" or parser is None:
                write(kind, piece)
                content += [piece] if kind == "answer" else []
                continue
            for event, value in parser.feed(piece):
                if event == "content" and isinstance(value, str):
                    write("answer", value)
                    content.append(value)
        if parser is not None:
            for event, value in parser.flush():
                if event == "content" and isinstance(value, str):
                    write("answer", value)
                    content.append(value)
        result = generation.result
    return "".join(content), parser.calls if parser else [], result
