"""Call formats of the families whose templates write calls other than Qwen's: Llama
3.1-3.3 (the JSON object alone, "parameters"), Mistral v3/Nemo ([TOOL_CALLS] and a JSON
list) and Mistral Small 3.2 ([TOOL_CALLS]NAME[ARGS]{...}). Each family's real template
(tests/chat_templates) renders a history with calls; the parser must read those calls
back from the text the template wrote, several in one answer where the family allows
it; and each format's grammar must compile against a real vocabulary."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmcli.engine.grammar import check_grammar
from llmcli.engine.model import Model
from llmcli.engine.tool_calls import (
    GENERIC,
    HERMES,
    LLAMA3,
    MISTRAL,
    MISTRAL_ARGS,
    CallFormat,
    CallParser,
    call_format,
    calls_grammar,
    parse_calls,
)
from llmcli.engine.tool_plan import ToolPlan
from llmcli.engine.types import LoadOptions, Message

TEMPLATES = Path(__file__).parent / "chat_templates"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
            "required": ["zone"],
        },
    },
}
CALLS = [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "CET"})]


@pytest.mark.parametrize(
    ("family", "fmt"),
    [
        ("qwen3", HERMES),
        ("llama3.2", LLAMA3),
        ("mistral-nemo", MISTRAL),
        ("mistral-small-3.2", MISTRAL_ARGS),
        ("gemma3", GENERIC),
    ],
)
def test_the_format_comes_from_the_template(family: str, fmt: CallFormat) -> None:
    assert call_format((TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8")) is fmt


@pytest.fixture(scope="module")
def render(family_model: Callable[..., Path]) -> Iterator[Callable[[str, int], str]]:
    """The text a family's template writes for a history whose assistant turn makes the
    first `n` of CALLS (ids of 9 letters, as Mistral's templates require)."""
    opened: dict[str, Model] = {}

    def make(family: str, n: int) -> str:
        if family not in opened:
            opened[family] = Model(LoadOptions(family_model(family), vocab_only=True))
        llm = opened[family]
        calls = [
            {"id": f"call{i}abcd", "type": "function", "function": {"name": a, "arguments": b}}
            for i, (a, b) in enumerate(CALLS[:n])
        ]
        messages = [
            Message(role="user", content="Weather and time in Paris?"),
            Message(role="assistant", content="", tool_calls=calls),
        ]
        for i in range(n):
            messages.append(Message(role="tool", content="ok", tool_call_id=f"call{i}abcd"))
        return llm.prompt_text(llm.chat_tokens(messages, tools=[WEATHER, TIME]))

    yield make
    for llm in opened.values():
        llm.close()


def _answer(prompt: str, fmt: CallFormat, end: str) -> str:
    """The assistant turn's text as the template wrote it: from the first call to the
    end of the turn (Mistral's templates end it with the model's end-of-sequence text,
    here the test model's, before the tool results)."""
    asked = prompt.index("Weather and time in Paris?")
    start = prompt.index(fmt.opener, asked)
    turn = prompt[start : prompt.index(end, start)]
    return turn.removesuffix("<|im_end|>")


@pytest.mark.parametrize(
    ("family", "fmt", "end", "n"),
    [
        ("llama3.2", LLAMA3, "<|eot_id|>", 1),
        ("mistral-nemo", MISTRAL, "[TOOL_RESULTS]", 2),
        ("mistral-small-3.2", MISTRAL_ARGS, "[TOOL_RESULTS]", 2),
        ("qwen3", HERMES, "<|im_end|>", 2),
    ],
)
def test_the_parser_reads_the_calls_the_real_template_writes(
    render: Callable[[str, int], str], family: str, fmt: CallFormat, end: str, n: int
) -> None:
    written = _answer(render(family, n), fmt, end)
    content, calls = parse_calls(written, fmt)
    assert content.strip() == ""
    assert [(c.name, json.loads(c.arguments)) for c in calls] == CALLS[:n]
    if fmt.id_length:
        assert all(len(c.id) == fmt.id_length and c.id.isalnum() for c in calls)
    # Streamed one character at a time, the same calls and no markup as content.
    parser = CallParser(fmt)
    events = [e for ch in written for e in parser.feed(ch)] + parser.flush()
    assert [e[1].name for e in events if e[0] == "call"] == [c for c, _ in CALLS[:n]]  # type: ignore[union-attr]
    assert "".join(str(e[1]) for e in events if e[0] == "content").strip() == ""


def test_text_before_a_call_stays_content_and_broken_calls_are_text() -> None:
    text = 'Let me look. [TOOL_CALLS]get_weather[ARGS]{"city": "Rome"}'
    content, [call] = parse_calls(text, MISTRAL_ARGS)
    assert content == "Let me look." and json.loads(call.arguments) == {"city": "Rome"}
    broken = '[TOOL_CALLS][{"name": "get_weather", "arguments": {'
    assert parse_calls(broken, MISTRAL) == (broken, [])
    assert parse_calls("The answer is 4.", LLAMA3) == ("The answer is 4.", [])


def test_a_llama_turn_takes_one_call() -> None:
    plan = ToolPlan([WEATHER, TIME], "required", True, LLAMA3)
    assert plan.limit == 1
    assert "root ::= tc-root" in (plan.grammar() or "")


@pytest.mark.parametrize("fmt", [HERMES, LLAMA3, MISTRAL, MISTRAL_ARGS])
def test_each_formats_grammar_compiles(model_file: Path, fmt: CallFormat) -> None:
    tools: list[dict[str, Any]] = [WEATHER, TIME]
    for several in (False, True):
        check_grammar(model_file, calls_grammar(tools, fmt, several=several))


# -- lazy grammars in one-shot generation ------------------------------------------------


def test_model_generate_applies_a_lazy_grammar_once_its_trigger_comes(model_file: Path) -> None:
    from llmcli.engine.types import Decoding, Sampling

    with Model(LoadOptions(path=model_file, n_ctx=512)) as llm:
        prompt = llm.completion_tokens("1, 2, 3, 4,")
        plain = Sampling(temperature=0, max_tokens=12)
        free = llm.generate(prompt, plain, Decoding(lookup=False)).complete().text
        # A trigger that never comes leaves the answer as it was.
        waiting = Sampling(
            temperature=0,
            max_tokens=12,
            grammar='root ::= "never"',
            grammar_trigger=r"[\s\S]*?(QQQQ)[\s\S]*",
        )
        assert llm.generate(prompt, waiting, Decoding(lookup=False)).complete().text == free
        # One that comes at the first digit: from there the grammar writes the rest.
        counted = Sampling(
            temperature=0,
            max_tokens=12,
            grammar='root ::= [0-9] " apples"',
            grammar_trigger=r"[\s\S]*?([0-9])[\s\S]*",
        )
        text = llm.generate(prompt, counted, Decoding(lookup=False)).complete().text
    assert re.fullmatch(r"\D*[0-9] apples", text), text
