"""The chat loop on the real model, in-process (context limits, model switching, files),
and `llmcli chat` with stdin that is not a terminal."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from clihelpers import ESCAPE, run_cli

from llmcli.chat.conversation import Conversation
from llmcli.chat.session import ChatSession, open_model
from llmcli.engine.model import Model
from llmcli.engine.types import LoadOptions, Sampling

PARAGRAPH = (
    "The lighthouse keeper wrote in his log every evening: the colour of the sea, the "
    "ships that passed, the birds that rested on the rail, and the weather coming in. "
)


@pytest.fixture(scope="module")
def small(model_file: Path) -> Iterator[tuple[Model, LoadOptions]]:
    load = LoadOptions(path=model_file, n_ctx=512, n_threads=1)
    llm = open_model(load)
    yield llm, load
    llm.close()


def new_session(small: tuple[Model, LoadOptions], **sampling: object) -> ChatSession:
    llm, load = small
    conv = Conversation(system="Be brief.", sampling=Sampling(temperature=0, **sampling))  # type: ignore[arg-type]
    return ChatSession(conv, llm, load, out=io.StringIO())


def test_a_full_context_drops_the_oldest_turns_with_a_notice(
    small: tuple[Model, LoadOptions], capsys: pytest.CaptureFixture[str]
) -> None:
    session = new_session(small, max_tokens=24)
    trimmed_at = None
    for turn in range(8):
        session.handle(f"Note {turn}: {PARAGRAPH}")
        err = capsys.readouterr().err
        if "dropped the" in err and trimmed_at is None:
            trimmed_at = turn
            assert "the system prompt is kept" in err
        assert session.last is not None and session.last.text, f"turn {turn} got no answer"
        assert session.last.prompt_tokens + session.last.completion_tokens <= 512
    assert trimmed_at is not None
    messages = session.conv.messages()
    assert messages[0]["content"] == "Be brief."
    assert messages[1]["role"] == "user"
    assert not messages[1]["content"].startswith("Note 0:")
    assert messages[-2]["content"].startswith("Note 7:")


def test_after_trimming_the_next_turn_reuses_the_cache_again(
    small: tuple[Model, LoadOptions], capsys: pytest.CaptureFixture[str]
) -> None:
    session = new_session(small, max_tokens=16)
    for turn in range(12):
        session.handle(f"Note {turn}: {PARAGRAPH}")
        if "dropped the" in capsys.readouterr().err:
            break
    else:
        pytest.fail("the context never filled")
    session.handle("Thanks.")
    assert "dropped the" not in capsys.readouterr().err  # trimmed with room to spare
    result = session.last
    assert result is not None
    assert result.prompt_tokens_evaluated < 20 < result.prompt_tokens


def test_a_message_bigger_than_the_context_is_refused_and_the_chat_goes_on(
    small: tuple[Model, LoadOptions], capsys: pytest.CaptureFixture[str]
) -> None:
    session = new_session(small, max_tokens=8)
    session.handle("Hello!")
    before = list(session.conv.turns)
    session.handle(PARAGRAPH * 20)
    err = capsys.readouterr().err
    assert re.search(r"llmcli: error: this message is \d+ tokens", err)
    assert session.conv.turns == before
    session.handle("Still there?")
    assert session.last is not None and session.last.text
    assert len(session.conv.turns) == 4


def test_model_switching_keeps_the_conversation_and_survives_bad_models(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load = LoadOptions(path=model_file, n_ctx=512, n_threads=1)
    session = ChatSession(
        Conversation(sampling=Sampling(temperature=0, max_tokens=8)),
        open_model(load),
        load,
        out=io.StringIO(),
    )
    try:
        session.handle("Hello!")
        fake = tmp_path / "fake.gguf"
        fake.write_bytes(b"not a model at all")
        session.handle(f"/model {fake}")
        session.handle(f"/model {tmp_path / 'missing.gguf'}")
        err = capsys.readouterr().err
        assert "not a GGUF model file" in err
        assert "model file not found" in err
        assert session.load.path == model_file  # still the first model
        copy = tmp_path / "copy.gguf"
        copy.symlink_to(model_file)
        session.handle(f"/model {copy}")
        assert "now chatting with" in capsys.readouterr().err
        assert session.conv.model == str(copy.resolve())
        session.handle("Again?")
        assert [m["role"] for m in session.conv.turns] == ["user", "assistant"] * 2
    finally:
        session.close()


def test_save_refuses_to_overwrite_a_file_that_is_not_a_chat(
    small: tuple[Model, LoadOptions], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = new_session(small)
    notes = tmp_path / "notes.md"
    notes.write_text("my notes\n")
    session.handle(f"/save {notes}")
    assert "not overwriting" in capsys.readouterr().err
    assert notes.read_text() == "my notes\n"
    session.handle(f"/save {tmp_path}")  # a directory: a dated file inside it
    assert len(list(tmp_path.glob("chat-*.json"))) == 1


# -- stdin that is not a terminal -------------------------------------------------------------


def test_piped_lines_are_messages_and_answers_are_plain_text(
    model_file: Path, isolated_home: Path
) -> None:
    lines = '/set temperature 0\nWhat is 2+2?\n"""\nAnd what is\n3+3?\n"""\n/stats\n'
    proc = run_cli("chat", "-m", str(model_file), "--threads", "1", "-n", "16", input=lines)
    assert proc.returncode == 0, proc.stderr
    assert "error" not in proc.stderr
    assert not ESCAPE.search(proc.stdout)
    assert "temperature set to 0" in proc.stderr and "tok/s" in proc.stderr
    saved = json.loads((isolated_home / "llmcli" / "last_chat.json").read_text("utf-8"))
    users = [m["content"] for m in saved["messages"] if m["role"] == "user"]
    assert users == ["What is 2+2?", "And what is\n3+3?"]
    answers = [m["content"] for m in saved["messages"] if m["role"] == "assistant"]
    # Each answer on stdout, as generated, followed by a blank line.
    assert proc.stdout == "".join(a.rstrip("\n") + "\n\n" for a in answers)


def test_empty_stdin_ends_at_once(model_file: Path) -> None:
    proc = run_cli("chat", "-m", str(model_file), input="", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


def test_resume_continues_the_last_chat(model_file: Path) -> None:
    first = run_cli(
        "chat", "-m", str(model_file), "--threads", "1", "-n", "8", "-s", "Terse.", input="Hello!\n"
    )
    assert first.returncode == 0, first.stderr
    # The model comes from the saved chat; no -m needed.
    proc = run_cli("chat", "--resume", "--threads", "1", "-n", "8", input="/show\nMore?\n")
    assert proc.returncode == 0, proc.stderr
    assert "continuing 2 messages" in proc.stderr
    assert str(model_file) in proc.stderr  # /show names the model file
    assert "Terse." in proc.stderr


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("--resume",), 1, "no previous chat to resume"),
        (("--resume", "--load", "x.json"), 2, "cannot be used together"),
        (("--load", "missing.json"), 1, "no such chat file"),
    ],
)
def test_startup_errors_are_one_line(
    model_file: Path, args: tuple[str, ...], code: int, words: str
) -> None:
    proc = run_cli("chat", "-m", str(model_file), *args, timeout=60)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmcli: error: "), proc.stderr
    assert words in lines[0]


def test_greedy_chat_drafts_from_earlier_turns_and_answers_as_without(
    small: tuple[Model, LoadOptions],
) -> None:
    llm, load = small
    answers = {}
    for lookup in (True, False):
        # Start both chats from an empty context: a prefix reused from an earlier test
        # would be followed by a differently split evaluation, which rounds differently.
        llm.llama.reset()
        conv = Conversation(sampling=Sampling(temperature=0, max_tokens=60))
        session = ChatSession(conv, llm, load, out=io.StringIO(), lookup=lookup)
        session.handle(f"Remember this paragraph: {PARAGRAPH}")
        session.handle("Now repeat the paragraph exactly.")
        assert session.last is not None
        answers[lookup] = [m["content"] for m in conv.messages()]
        drafted = session.last.accepted_tokens
        assert drafted > 10 if lookup else drafted == 0
    assert answers[True] == answers[False]
