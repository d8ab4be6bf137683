"""The conversation as data (fast, no model), and KV-cache reuse across turns (real model)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from llmcli.chat import chat_file, commands, multiline, trimming
from llmcli.chat.commands import Outcome
from llmcli.chat.conversation import Conversation
from llmcli.engine.types import Message, Sampling

# -- slash commands ------------------------------------------------------------------------


def test_plain_text_and_path_like_text_are_messages() -> None:
    conv = Conversation()
    assert commands.dispatch(conv, "hello") is None
    assert commands.dispatch(conv, "/usr/bin/env is a program") is None
    assert commands.dispatch(conv, "/5 of them") is None


def test_unknown_command_suggests_the_closest() -> None:
    outcome = commands.dispatch(Conversation(), "/sav")
    assert outcome is not None and outcome.error is not None
    assert "did you mean /save?" in outcome.error
    outcome = commands.dispatch(Conversation(), "/systme hi")
    assert outcome is not None and outcome.error is not None
    assert "/system" in outcome.error


@pytest.mark.parametrize(
    ("typed", "action", "argument"),
    [
        ("/exit", "exit", ""),
        ("/bye", "exit", ""),
        ("/RETRY", "retry", ""),
        ("/save  my chat.json ", "save", "my chat.json"),
        ("/load ~/x.json", "load", "~/x.json"),
        ("/model smollm2:135m", "model", "smollm2:135m"),
        ("/stats", "stats", ""),
        ("/show", "show", ""),
    ],
)
def test_commands_that_need_the_loop_become_actions(typed: str, action: str, argument: str) -> None:
    assert commands.dispatch(Conversation(), typed) == Outcome(action=action, argument=argument)  # type: ignore[arg-type]


def test_load_and_model_need_an_argument() -> None:
    for typed in ("/load", "/model"):
        outcome = commands.dispatch(Conversation(), typed)
        assert outcome is not None and outcome.error is not None
        assert outcome.error.startswith("usage: ")


def test_help_lists_every_command() -> None:
    outcome = commands.dispatch(Conversation(), "/help")
    assert outcome is not None and outcome.info is not None
    for spec in commands.COMMANDS:
        assert f"/{spec.name}" in outcome.info
    assert commands.dispatch(Conversation(), "/?") == outcome


def test_system_and_clear() -> None:
    conv = Conversation()
    conv.ask("hi")
    conv.answer("hello")
    commands.dispatch(conv, "/system Be brief.\nVery brief.")
    assert conv.system == "Be brief.\nVery brief."
    commands.dispatch(conv, "/clear")
    assert conv.turns == []
    assert conv.messages() == [Message(role="system", content="Be brief.\nVery brief.")]


def test_set_changes_and_validates_settings() -> None:
    conv = Conversation()
    assert commands.dispatch(conv, "/set temperature 0") == Outcome(info="temperature set to 0")
    assert conv.sampling.temperature == 0.0
    commands.dispatch(conv, "/set top-k 12")
    commands.dispatch(conv, "/set max_tokens 100")
    commands.dispatch(conv, "/set seed 7")
    assert (conv.sampling.top_k, conv.sampling.max_tokens, conv.sampling.seed) == (12, 100, 7)
    commands.dispatch(conv, "/set max_tokens none")
    commands.dispatch(conv, "/set seed random")
    assert conv.sampling.max_tokens is None and conv.sampling.seed is None
    before = conv.sampling
    for bad, words in [
        ("/set top_p 1.5", "top_p must be a number from 0 to 1"),
        ("/set temperature -1", "temperature must be"),
        ("/set top_k 2.5", "top_k must be a whole number"),
        ("/set temperature warm", "'warm'"),
        ("/set temperature none", "temperature needs"),
        ("/set temp 0", "did you mean temperature?"),
        ("/set min_p nan", "min_p must be"),
    ]:
        outcome = commands.dispatch(conv, bad)
        assert outcome is not None and outcome.error is not None, bad
        assert words in outcome.error, outcome.error
    assert conv.sampling == before


def test_set_without_a_value_explains() -> None:
    conv = Conversation()
    listing = commands.dispatch(conv, "/set")
    assert listing is not None and listing.info is not None
    assert "temperature 0.8" in listing.info
    one = commands.dispatch(conv, "/set top_p")
    assert one is not None and one.info is not None and "top_p is 0.95" in one.info


def test_completions_cover_commands_and_setting_names() -> None:
    words = commands.completions()
    assert "/retry" in words and "/exit" in words
    assert "repeat_penalty" in words["/set"]


# -- retry and unanswered messages ---------------------------------------------------------


def test_retry_drops_only_the_last_answer() -> None:
    conv = Conversation()
    assert not conv.prepare_retry()
    conv.ask("a")
    conv.answer("A")
    conv.ask("b")
    conv.answer("B")
    assert conv.prepare_retry()
    assert [m["content"] for m in conv.turns] == ["a", "A", "b"]
    conv.drop_unanswered()
    assert [m["content"] for m in conv.turns] == ["a", "A"]


# -- multi-line input -----------------------------------------------------------------------


def test_triple_quote_blocks() -> None:
    assert multiline.block_is_open('"""')
    assert multiline.block_is_open('"""first line\nsecond')
    assert not multiline.block_is_open('"""first\nlast"""')
    assert not multiline.block_is_open('plain """ text')
    assert multiline.unwrap_block('"""\nline one\nline two\n"""') == "line one\nline two"
    assert multiline.unwrap_block('"""inline"""') == "inline"
    assert multiline.unwrap_block("no quotes") == "no quotes"


def test_block_reader_joins_lines_for_piped_input() -> None:
    reader = multiline.BlockReader()
    got = [reader.feed(line) for line in ["one\n", '"""\n', "a\n", "b\n", '"""\n', "two\n"]]
    assert [g for g in got if g is not None] == ["one", "a\nb", "two"]
    reader.feed('"""never closed\n')
    assert reader.finish() == "never closed"
    assert reader.finish() is None


# -- context trimming -----------------------------------------------------------------------


def word_tokens(messages: Sequence[Message]) -> list[int]:
    """A stand-in tokenizer: 3 tokens of template per message, one per word."""
    return [0] * sum(3 + len(m["content"].split()) for m in messages)


def chat_of(exchanges: int, words: int = 20) -> Conversation:
    conv = Conversation(system="be kind", sampling=Sampling(max_tokens=100))
    for i in range(exchanges):
        conv.ask(f"question {i} " + "w " * words)
        conv.answer(f"answer {i} " + "w " * words)
    conv.ask("last question")
    return conv


def test_a_prompt_that_fits_is_left_alone() -> None:
    conv = chat_of(2)
    fit = trimming.fit_context(conv, word_tokens, n_ctx=1000)
    assert fit.dropped_messages == 0
    assert len(fit.tokens) == len(word_tokens(conv.messages()))


def test_trimming_drops_whole_oldest_exchanges_and_keeps_the_system_prompt() -> None:
    conv = chat_of(20)
    n_ctx = 400  # 100 kept for the answer (max_tokens)
    fit = trimming.fit_context(conv, word_tokens, n_ctx=n_ctx)
    assert fit.dropped_messages > 0 and fit.dropped_messages % 2 == 0
    assert len(fit.tokens) <= (n_ctx - 100) * 3 // 4  # trimmed with room to spare
    messages = conv.messages()
    assert messages[0] == Message(role="system", content="be kind")
    assert messages[1]["role"] == "user"
    assert messages[-1]["content"] == "last question"
    # The newest exchanges are the ones kept.
    assert messages[-2]["content"].startswith("answer 19 ")


def test_a_message_too_big_for_the_context_changes_nothing() -> None:
    conv = chat_of(1)
    conv.ask("w " * 2000)
    before = list(conv.turns)
    with pytest.raises(trimming.MessageTooLong) as caught:
        trimming.fit_context(conv, word_tokens, n_ctx=1000)
    assert conv.turns == before
    assert "--ctx" in str(caught.value)


def test_answer_reserve() -> None:
    assert trimming.answer_reserve(4096, None) == 1024
    assert trimming.answer_reserve(4096, 200) == 200
    assert trimming.answer_reserve(4096, 100_000) == 2048


# -- files ---------------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    conv = Conversation(
        model="smollm2:135m",
        system="Be brief.",
        sampling=Sampling(temperature=0.0, seed=3, max_tokens=50, stop=("END",)),
    )
    conv.ask("Hi ✓ <|im_end|>")
    conv.answer("Hello!\n\n```py\nprint(1)\n```\n")
    path = tmp_path / "sub" / "chat.json"
    chat_file.save(conv, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "llmcli-chat" and data["version"] == 1
    assert data["messages"][0] == {"role": "system", "content": "Be brief."}
    loaded = chat_file.load(path)
    assert loaded.messages() == conv.messages()
    assert loaded.sampling == conv.sampling
    assert loaded.model == "smollm2:135m"
    assert not list(path.parent.glob("*.tmp"))


def test_save_replaces_atomically_and_leaves_no_temp_file_on_error(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    chat_file.save(Conversation(system="one"), path)
    chat_file.save(Conversation(system="two"), path)
    assert chat_file.load(path).system == "two"
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(chat_file.ConversationFileError, match="cannot save to"):
        chat_file.save(Conversation(), blocked / "chat.json")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "not JSON (line 1"),
        ("[1, 2]", "not an llmcli chat file"),
        ('{"messages": []}', "not an llmcli chat file"),
        ('{"format": "llmcli-chat", "version": 9, "messages": []}', "newer llmcli"),
        ('{"format": "llmcli-chat", "version": 1}', '"messages" must be a list'),
        (
            '{"format": "llmcli-chat", "version": 1,'
            ' "messages": [{"role": "robot", "content": ""}]}',
            "unexpected role 'robot'",
        ),
        # A tool result is kept (tools in chat), with the call it answers.
        (
            '{"format": "llmcli-chat", "version": 1,'
            ' "messages": [{"role": "tool", "content": ""}]}',
            'message 1 (a tool result) needs a "tool_call_id"',
        ),
        (
            '{"format": "llmcli-chat", "version": 1,'
            ' "messages": [{"role": "assistant", "content": "", "tool_calls": [1]}]}',
            'message 1 has "tool_calls" that are not calls',
        ),
        (
            '{"format": "llmcli-chat", "version": 1, "messages": [{"role": "user"}]}',
            'message 1 needs a text "content"',
        ),
        (
            '{"format": "llmcli-chat", "version": 1, "messages": [],'
            ' "settings": {"temperature": "hot"}}',
            "temperature must be",
        ),
        (
            '{"format": "llmcli-chat", "version": 1, "messages": [], "settings": {"top_k": true}}',
            "top_k must be",
        ),
    ],
)
def test_bad_files_give_one_clear_line(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(chat_file.ConversationFileError) as caught:
        chat_file.load(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot load {path}")
    assert words in message


def test_missing_binary_and_directory_files(tmp_path: Path) -> None:
    with pytest.raises(chat_file.ConversationFileError, match="no such chat file"):
        chat_file.load(tmp_path / "nope.json")
    with pytest.raises(chat_file.ConversationFileError, match="directory"):
        chat_file.load(tmp_path)
    binary = tmp_path / "model.gguf"
    binary.write_bytes(b"GGUF\xff\xfe\x00")
    with pytest.raises(chat_file.ConversationFileError, match="not UTF-8"):
        chat_file.load(binary)


# -- KV cache reuse on the real model ---------------------------------------------------------


@pytest.fixture(scope="module")
def session(model_file: Path) -> Iterator[object]:
    from llmcli.chat.session import ChatSession, open_model
    from llmcli.engine.types import LoadOptions

    load = LoadOptions(path=model_file, n_ctx=2048, n_threads=1)
    llm = open_model(load)
    conv = Conversation(system="You are terse.", sampling=Sampling(temperature=0, max_tokens=40))
    yield ChatSession(conv, llm, load, out=io.StringIO())
    llm.close()


def test_each_turn_evaluates_only_the_new_tokens(session: object) -> None:
    from llmcli.chat.session import ChatSession

    assert isinstance(session, ChatSession)
    questions = ["Tell me about cats.", "And dogs?", "Which one is easier to keep?", "Thanks!"]
    evaluated: list[int] = []
    for i, question in enumerate(questions):
        session.handle(question)
        result = session.last
        assert result is not None and result.text
        # What the conversation holds is exactly what was streamed.
        assert session.conv.turns[-1] == Message(role="assistant", content=result.text)
        new = len(session.llm.tokenize(question, add_bos=False))
        if i == 0:
            assert result.prompt_tokens_evaluated == result.prompt_tokens
        else:
            # The question, the template's ~10 tokens around it, and at most a couple of
            # tokens where the cut-off answer ends: never the history again.
            assert new <= result.prompt_tokens_evaluated <= new + 14, (i, result)
        evaluated.append(result.prompt_tokens_evaluated)
    assert session.last is not None and session.last.prompt_tokens > 3 * max(evaluated[1:])
