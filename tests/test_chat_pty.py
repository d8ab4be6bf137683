"""`llmcli chat` driven like a person would: a real pseudo-terminal, the real model."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

pexpect = pytest.importorskip("pexpect")

# The placeholder shows only on an empty prompt: the chat is waiting for input. (The
# bare ">>> " also appears when an accepted line is redrawn, before the answer.)
READY = "Send a message"
UP = "\x1b[A"
CTRL_C, CTRL_D = "\x03", "\x04"


class Chat:
    def __init__(self, model: Path, *args: str, timeout: float = 120) -> None:
        env = {
            **os.environ,
            "TERM": "xterm-256color",
            # The pty never answers cursor-position queries; do not wait for them.
            "PROMPT_TOOLKIT_NO_CPR": "1",
        }
        self.log = io.StringIO()
        self.child: Any = pexpect.spawn(
            sys.executable,
            # One thread: llama.cpp's spinning workers slow down badly when the test
            # machine's cores are busy with other work, and these tests are about the chat.
            ["-m", "llmcli", "chat", "-m", str(model), "--threads", "1", *args],
            env=env,
            encoding="utf-8",
            timeout=timeout,
            dimensions=(40, 120),
        )
        self.child.logfile_read = self.log
        self.ready()

    def ready(self) -> None:
        self.child.expect(READY)

    def send(self, text: str) -> None:
        self.child.send(text)

    def line(self, text: str, *, wait: bool = True) -> None:
        """Type a line and press Enter; by default wait for the next empty prompt."""
        self.child.send(text + "\r")
        if wait:
            self.ready()

    def expect(self, pattern: str) -> None:
        self.child.expect(pattern)

    def quit(self) -> int:
        self.child.send(CTRL_D)
        self.child.expect(pexpect.EOF)
        self.child.close()
        transcript = self.log.getvalue()
        assert "Traceback" not in transcript, transcript
        assert "Aborted" not in transcript, transcript
        return int(self.child.exitstatus)


def last_chat(home: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((home / "llmcli" / "last_chat.json").read_text("utf-8"))
    return data


def test_a_question_gets_an_answer_and_ctrl_d_exits_cleanly(
    model_file: Path, isolated_home: Path
) -> None:
    chat = Chat(model_file, "-n", "24")
    start = len(chat.log.getvalue())
    chat.line("What is the capital of France?")
    answer = chat.log.getvalue()[start:]
    assert re.search(r"[A-Za-z]{3,}", answer.split("France?", 1)[-1])
    assert chat.quit() == 0
    messages = last_chat(isolated_home)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"].strip()


def test_retry_at_temperature_0_gives_the_same_answer(
    model_file: Path, isolated_home: Path
) -> None:
    chat = Chat(model_file, "-n", "32")
    chat.line("/set temperature 0")
    chat.line("Name three colours.")
    first = last_chat(isolated_home)["messages"][-1]["content"]
    chat.line("/retry")
    second = last_chat(isolated_home)["messages"]
    assert len(second) == 2  # the retried answer replaced the first
    assert second[-1]["content"] == first
    assert chat.quit() == 0


def test_ctrl_c_stops_the_answer_and_keeps_the_part_shown(
    model_file: Path, isolated_home: Path, tmp_path: Path
) -> None:
    chat = Chat(model_file)
    chat.line("/set max_tokens 2000")
    chat.line("/set temperature 0")
    chat.line("Count from 1 to 1000.", wait=False)
    chat.expect(r"\b1[0-9]\b")  # the answer is streaming and has reached the teens
    chat.send(CTRL_C)
    chat.expect("stopped; the partial answer is kept")
    chat.ready()
    chat.line("/stats")
    assert re.search(r"answer \d+ tokens .* interrupted", chat.log.getvalue())
    saved = tmp_path / "stopped.json"
    chat.line(f"/save {saved}")
    messages = json.loads(saved.read_text("utf-8"))["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert re.search(r"\b1[0-9]\b", messages[-1]["content"])
    # The chat goes on after the interruption.
    chat.line("/set max_tokens 8")
    chat.line("Thanks.")
    assert len(last_chat(isolated_home)["messages"]) == 4
    assert chat.quit() == 0


def test_save_then_load_continues_the_conversation(model_file: Path, tmp_path: Path) -> None:
    saved = tmp_path / "trip.json"
    chat = Chat(model_file, "-n", "16", "-s", "You are terse.")
    chat.line("/set seed 42")
    chat.line("Suggest a city to visit.")
    chat.line(f"/save {saved}")
    assert f"saved 3 messages to {saved}" in chat.log.getvalue()
    assert chat.quit() == 0
    first = json.loads(saved.read_text("utf-8"))

    chat = Chat(model_file, "--load", str(saved))
    assert "continuing 2 messages from" in chat.log.getvalue()
    chat.line("/set")
    assert "seed 42" in chat.log.getvalue()  # the settings came back too
    chat.line("Why that one?")
    again = tmp_path / "trip2.json"
    chat.line(f"/save {again}")
    assert chat.quit() == 0
    second = json.loads(again.read_text("utf-8"))
    assert second["messages"][:3] == first["messages"]
    assert [m["role"] for m in second["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]


def test_a_broken_file_is_one_line_and_the_chat_goes_on(model_file: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"messages": "nope"}', encoding="utf-8")
    chat = Chat(model_file, "-n", "4")
    chat.line("/set top_k 7")
    chat.line(f"/load {broken}")
    assert "not an llmcli chat file" in chat.log.getvalue()
    chat.line("/set top_k")
    assert "top_k is 7" in chat.log.getvalue()  # the current chat was not touched
    assert chat.quit() == 0


def test_history_survives_a_restart(model_file: Path, isolated_home: Path) -> None:
    chat = Chat(model_file)
    chat.line("/set top_k 5")
    assert chat.quit() == 0
    assert "/set top_k 5" in (isolated_home / "llmcli" / "chat_history").read_text("utf-8")

    chat = Chat(model_file)
    chat.send(UP)
    chat.expect("/set top_k 5")
    chat.line("")  # Enter runs the recalled line
    assert "top_k set to 5" in chat.log.getvalue()
    assert chat.quit() == 0


def test_unknown_command_hint_tab_completion_and_ctrl_c_at_the_prompt(
    model_file: Path,
) -> None:
    chat = Chat(model_file)
    chat.line("/sav")
    assert "unknown command /sav; did you mean /save?" in chat.log.getvalue()
    chat.send("/sta\t")
    chat.expect("/stats")
    chat.line("")
    assert "no answer yet" in chat.log.getvalue()
    # Ctrl-C clears a half-typed line: what follows is a fresh command, not "half/show".
    chat.send("half a thought")
    chat.send(CTRL_C)
    chat.ready()
    chat.line("/system")
    assert "system prompt: (none" in chat.log.getvalue()
    assert chat.quit() == 0


def test_multi_line_messages(model_file: Path, isolated_home: Path) -> None:
    chat = Chat(model_file, "-n", "1")
    chat.send('"""\r')
    chat.send("line one\r")
    chat.line('line two"""')
    chat.send("alt\x1b\r")  # Alt-Enter / Esc Enter: a new line, not send
    chat.line("enter")
    chat.line("\x1b[200~pasted\r\nlines\x1b[201~")  # bracketed paste
    users = [m["content"] for m in last_chat(isolated_home)["messages"] if m["role"] == "user"]
    assert users == ["line one\nline two", "alt\nenter", "pasted\nlines"]
    assert chat.quit() == 0


# -- approval of tool calls ----------------------------------------------------------------


def test_tool_calls_are_asked_about_and_always_stops_asking(
    family_model: Any, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each turn must call `record` (--tool-choice): n refuses it and the model is given
    the refusal as the result; y runs it; a runs it and later calls are not asked about."""
    tools = Path(__file__).parent / "tool_fixtures" / "python_tools.py"
    mark = tmp_path / "mark.txt"
    monkeypatch.setenv("TOOL_MARK", str(mark))
    monkeypatch.setenv("LLMCLI_ENGINE_SETUP", "no-repack")
    model = family_model("qwen3", weights=True)
    chat = Chat(
        model,
        "--tool-file",
        str(tools),
        "--tool-choice",
        "record",
        "--max-steps",
        "1",
        "--temperature",
        "0",
        "-n",
        "32",
        timeout=400,
    )
    question = r"Run record\? \[y\]es, \[n\]o, \[a\]lways for record: "
    turns = (("It rained.", "n", False), ("It snowed.", "y", True), ("It was windy.", "a", True))
    for note, answer, ran in turns:
        mark.unlink(missing_ok=True)
        chat.line(f"Note: {note}", wait=False)
        chat.expect(question)
        chat.child.sendline(answer)
        chat.ready()
        assert mark.exists() == ran, answer
    mark.unlink()
    chat.line("Note: it was sunny.")
    assert mark.exists()  # ran, without a question
    assert len(re.findall(question, chat.log.getvalue())) == 3
    assert chat.quit() == 0
    results = [m["content"] for m in last_chat(isolated_home)["messages"] if m["role"] == "tool"]
    assert results == ["the user declined to run this call"] + ["recorded"] * 3
