"""Call formats of the families whose templates write calls other than Qwen's: Llama
3.1-3.3 (the JSON object alone, "parameters"), Mistral v3/Nemo ([TOOL_CALLS] and a JSON
list), Mistral Small 3.2 ([TOOL_CALLS]NAME[ARGS]{...}), gpt-oss (harmony's
`to=functions.NAME` messages), DeepSeek R1 and V3.1 (<｜tool▁calls▁begin｜> blocks),
Granite 3 (<|tool_call|> and a JSON list; Granite 4 writes Qwen's <tool_call>) and
SmolLM3 (<tool_call>, its tools described as its original template did). Each family's
real template (tests/chat_templates) renders a history with calls, given as `run`,
`chat` and `serve` give it (tool_plan.prompt_inputs: calls written into the turn where
the template drops them, tools described where it cannot render them); the parser must
read those calls back from the text the template wrote, several in one answer where the
family allows it; each format's grammar must compile against a real vocabulary, and,
made to call from the first token, the test model with the family's template must write
a call that the family's parser reads."""

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
    DEEPSEEK,
    DEEPSEEK_V3,
    GENERIC,
    GRANITE,
    HARMONY,
    HERMES,
    LLAMA3,
    MISTRAL,
    MISTRAL_ARGS,
    SMOLLM3,
    CallFormat,
    CallParser,
    call_format,
    calls_grammar,
    parse_calls,
)
from llmcli.engine.tool_plan import ToolPlan, prompt_inputs
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
        ("gpt-oss", HARMONY),
        ("granite3.3", GRANITE),
        ("granite4", HERMES),
        ("smollm3", SMOLLM3),
    ],
)
def test_the_format_comes_from_the_template(family: str, fmt: CallFormat) -> None:
    assert call_format((TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8")) is fmt


def test_deepseek_templates_write_calls_but_take_no_tools() -> None:
    for family, fmt in (("deepseek-r1-distill", DEEPSEEK), ("deepseek-v3.1", DEEPSEEK_V3)):
        found = call_format((TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8"))
        assert found.name == fmt.name and found.native and found.writes_calls
        assert found.described and not found.takes_tools
    assert not DEEPSEEK.described and not HARMONY.described and not GRANITE.described


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
        plan = ToolPlan([WEATHER, TIME], "auto", True, call_format(llm.tokenizer.chat_template))
        shown, tools = prompt_inputs(plan, messages)
        return llm.prompt_text(llm.chat_tokens(shown, tools=tools))

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
        ("gpt-oss", HARMONY, "<|call|>", 1),
        ("deepseek-r1-distill", DEEPSEEK, "<｜end▁of▁sentence｜>", 2),
        ("deepseek-v3.1", DEEPSEEK_V3, "<｜end▁of▁sentence｜>", 2),
        ("granite3.3", GRANITE, "<|end_of_text|>", 2),
        ("granite4", HERMES, "<|end_of_text|>", 2),
        ("smollm3", SMOLLM3, "<|im_end|>", 2),
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
    # The lazy grammar's trigger fires at the call's opener, after free text.
    trigger = re.fullmatch(fmt.lazy_trigger(), f"Let me see. {written}")
    assert trigger is not None and trigger.start(1) == len("Let me see. ")
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


def test_tools_reach_each_family_as_it_expects(render: Callable[[str, int], str]) -> None:
    """The tools in the prompt: rendered by the template where it takes them, else
    described in the family's own words, with a call written in its own syntax."""
    oss = render("gpt-oss", 1)
    assert "namespace functions {" in oss and "type get_weather = (_: {" in oss
    granite = render("granite3.3", 2)
    assert "<|start_of_role|>available_tools<|end_of_role|>[" in granite
    assert '"name": "get_time"' in granite
    deepseek = render("deepseek-r1-distill", 2)
    assert "You can call any of the following function tools" in deepseek
    assert "function<｜tool▁sep｜>example_function_name\n```json\n" in deepseek
    assert deepseek.index('"get_weather"') < deepseek.index("<｜User｜>")
    smol = render("smollm3", 2)
    assert "### XML Tools\n\nYou may call one or more functions" in smol
    assert f"<tools>\n{json.dumps(WEATHER)}\n{json.dumps(TIME)}\n</tools>" in smol
    # Tool results: SmolLM3's template knows no tool role, they come as user turns.
    assert "<|im_start|>user\n<tool_response>\nok\n</tool_response><|im_end|>" in smol


def test_harmony_calls_come_through_the_reasoning_splitter() -> None:
    """gpt-oss writes `<|channel|>commentary to=functions.NAME <|constrain|>json` (not
    the order its template writes history in): the splitter passes the message on."""
    from llmcli.engine.reasoning import ReasoningFormat, Splitter

    text = (
        "<|channel|>analysis<|message|>The user wants the weather.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather "
        '<|constrain|>json<|message|>{"city": "Paris"}<|call|>'
    )
    splitter, parser = Splitter(ReasoningFormat("harmony")), CallParser(HARMONY)
    parts = [p for ch in text for p in splitter.feed(ch)] + splitter.flush()
    assert "".join(t for k, t in parts if k == "thinking") == "The user wants the weather."
    events = [e for k, t in parts if k == "answer" for e in parser.feed(t)] + parser.flush()
    assert [e[0] for e in events] == ["call"]
    assert (parser.calls[0].name, json.loads(parser.calls[0].arguments)) == CALLS[0]


@pytest.mark.parametrize(
    "fmt", [HERMES, LLAMA3, MISTRAL, MISTRAL_ARGS, HARMONY, DEEPSEEK, DEEPSEEK_V3, GRANITE]
)
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


# -- each new family's grammar and parser agree, on the real engine ------------------------


@pytest.mark.parametrize(
    "family", ["gpt-oss", "deepseek-r1-distill", "deepseek-v3.1", "granite3.3", "smollm3"]
)
def test_a_required_call_in_each_familys_format_is_read_back(model_file: Path, family: str) -> None:
    """The test model with the family's template, made to call get_time from its first
    token: what the grammar lets it write is a call the family's parser reads."""
    from llmcli.engine.reasoning import Thinking
    from llmcli.engine.types import Decoding, Sampling

    template = (TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8")
    with Model(LoadOptions(model_file, n_ctx=2048, chat_template=template)) as llm:
        fmt = call_format(llm.tokenizer.chat_template)
        plan = ToolPlan([WEATHER, TIME], "get_time", True, fmt)
        asked = [Message(role="user", content="What time is it in Paris?")]
        shown, tools = prompt_inputs(plan, asked)
        # Thinking off: a template that opens the thinking block would make the forced
        # call thinking text.
        prompt = llm.chat_tokens(shown, thinking=Thinking(enabled=False), tools=tools)
        # DeepSeek's markers are many tokens of the test model's vocabulary.
        sampling = Sampling(temperature=0, max_tokens=200, grammar=plan.grammar())
        parser = CallParser(fmt, limit=plan.limit)
        answer = ""
        with llm.generate(prompt, sampling, Decoding(lookup=False)) as generation:
            for kind, piece in generation:
                assert kind == "answer", piece
                answer += piece
                assert [e for e in parser.feed(piece) if e[0] == "content"] == [], answer
        assert [e for e in parser.flush() if e[0] == "content"] == [], answer
    [call] = parser.calls
    assert call.name == "get_time" and json.loads(call.arguments)["zone"] in ("UTC", "CET")
