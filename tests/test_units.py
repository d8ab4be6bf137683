"""Fast unit tests of the pure parts: stop strings, prompt input, chat segments, output."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pytest

from llmcli.commands.prompt_input import combine, read_stdin
from llmcli.commands.structured import OutputFormat
from llmcli.engine.chat_prompt import merge_system, segments
from llmcli.engine.stops import StopScanner
from llmcli.engine.types import Message
from llmcli.errors import UsageError


def scan(stops: tuple[str, ...], pieces: Sequence[str]) -> tuple[str, bool]:
    scanner = StopScanner(stops)
    out = "".join(scanner.feed(p) for p in pieces)
    return out + scanner.flush(), scanner.stopped


@pytest.mark.parametrize(
    ("stops", "pieces", "expected"),
    [
        ((), ["a", "b"], ("ab", False)),
        (("END",), ["hello E", "N", "D more"], ("hello ", True)),
        (("END",), ["hello E", "NX"], ("hello ENX", False)),
        (("END",), ["trailing E"], ("trailing E", False)),
        (("\n\n", "###"), ["a\n", "\nb"], ("a", True)),
        (("ab", "abc"), ["xab"], ("x", True)),
    ],
)
def test_stop_scanner(
    stops: tuple[str, ...], pieces: list[str], expected: tuple[str, bool]
) -> None:
    assert scan(stops, pieces) == expected


def test_stop_scanner_holds_back_only_possible_prefixes() -> None:
    scanner = StopScanner(("STOP",))
    assert scanner.feed("abc S") == "abc "
    assert scanner.feed("T") == ""
    assert scanner.feed("x") == "STx"


def test_combine_argument_and_stdin() -> None:
    assert combine("Summarize:", "text\n") == "Summarize:\n\ntext"
    assert combine(None, "only stdin\n") == "only stdin"
    assert combine("only arg", None) == "only arg"
    assert combine("only arg", "") == "only arg"


def test_combine_without_prompt_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        combine(None, "  \n")
    assert "llmcli chat" in str(info.value)


def test_read_stdin_replaces_invalid_utf8() -> None:
    assert read_stdin(io.BytesIO(b"caf\xe9 ok")) == "caf\ufffd ok"


def chatml(messages: Sequence[Message]) -> str:
    return (
        "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        + "<|im_start|>assistant\n"
    )


def test_segments_split_template_from_content() -> None:
    messages = [Message(role="user", content="hi <|im_end|> there")]
    parts = segments(chatml, messages)
    assert "".join(p.text for p in parts) == chatml(messages)
    assert [p.special for p in parts] == [True, False, True]
    assert parts[1].text == "hi <|im_end|> there"


def test_segments_follow_templates_that_trim_content() -> None:
    def trimming(messages: Sequence[Message]) -> str:
        return "".join(f"[{m['role']}]{m['content'].strip()}[/]" for m in messages)

    messages = [Message(role="user", content="  padded  ")]
    parts = segments(trimming, messages)
    assert "".join(p.text for p in parts) == trimming(messages)
    assert [p.text for p in parts if not p.special] == ["padded"]


def test_merge_system_into_first_user_turn() -> None:
    merged = merge_system(
        [Message(role="system", content="Be brief."), Message(role="user", content="Hi")]
    )
    assert merged == [Message(role="user", content="Be brief.\n\nHi")]


def test_markdown_writer_renders_blocks_once() -> None:
    from rich.console import Console

    from llmcli.ui import console as ui

    buffer = io.StringIO()
    fake = Console(file=buffer, force_terminal=True, width=60, color_system=None)
    ui.stdout_console.cache_clear()
    original = ui.stdout_console
    ui.stdout_console = lambda: fake  # type: ignore[assignment]
    try:
        with ui.AnswerWriter(markdown=True) as writer:
            pieces = ["# Ti", "tle\n\nSome **bo", "ld** text\n\n", "```py\nx = 1\n\n", "y=2\n```"]
            for piece in pieces:
                writer.write(piece)
    finally:
        ui.stdout_console = original  # type: ignore[assignment]
    out = buffer.getvalue()
    assert "Title" in out and "**" not in out and "# Ti" not in out
    assert out.count("Some bold text") == 1
    assert "x = 1" in out and "y=2" in out


def test_plain_writer_adds_final_newline_only_when_missing() -> None:
    from llmcli.ui.console import AnswerWriter

    buffer = io.StringIO()
    with AnswerWriter(markdown=False, out=buffer) as writer:
        writer.write("hello")
    assert buffer.getvalue() == "hello\n"
    buffer = io.StringIO()
    with AnswerWriter(markdown=False, out=buffer) as writer:
        writer.write("line\n")
    assert buffer.getvalue() == "line\n"


@pytest.mark.parametrize(
    ("text", "cut_off_at", "expected"),
    [
        ('{"name": "Al', 5, "the answer is not valid JSON: it was cut off at 5 tokens"),
        (
            '{"name": "Al',
            None,
            "the answer is not valid JSON: unterminated string starting at line 1, column 10",
        ),
        (
            '{"a": 1 "b": 2}',
            None,
            "the answer is not valid JSON: expecting ',' delimiter at line 1, column 9",
        ),
        ('{"a": 1}', 5, None),  # cut off exactly where it ended: still fine
    ],
)
def test_an_invalid_json_answer_is_explained_in_words(
    text: str, cut_off_at: int | None, expected: str | None
) -> None:
    fmt = OutputFormat(gbnf="", json=True)
    assert fmt.problem_with(text, cut_off_at=cut_off_at) == expected


def test_an_unexpected_error_says_how_to_see_where_it_came_from() -> None:
    from llmcli.cli import _exit_code
    from llmcli.errors import ExitCode

    code, message = _exit_code(RuntimeError("boom"))
    assert code == ExitCode.ERROR
    assert (
        message
        == "unexpected error: RuntimeError: boom (LLMCLI_DEBUG=1 shows where; please report it)"
    )
