"""What a person meets at a terminal: Ctrl-C at any moment, answers that run away, typing
while the chat answers, and a first run without the Hub. The real CLI in a subprocess or a
real pseudo-terminal, on the real model."""

from __future__ import annotations

import fcntl
import io
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clihelpers import cli_command, run_cli
from test_chat_pty import CTRL_C, READY, Chat, last_chat

from llmcli.engine.repetition import MIN_SHORT, cycle_at_end

pexpect = pytest.importorskip("pexpect")

# -- Ctrl-C at any moment -------------------------------------------------------------

COUNT = ("--temperature", "0", "-n", "64", "Count from 1 to 50.")


def _blocked_on_stderr(args: list[str], *, until: bytes) -> subprocess.Popen[bytes]:
    """llmcli started with stderr on a pipe of one page that is read until `until` shows,
    then no more: the program is held at its next write to stderr, wherever that is."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    fcntl.fcntl(proc.stderr.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    seen = b""
    deadline = time.monotonic() + 60
    while until not in seen:
        assert time.monotonic() < deadline, seen[-2000:]
        chunk = os.read(proc.stderr.fileno(), 512)
        assert chunk, seen[-2000:]
        seen += chunk
    time.sleep(0.3)  # the program writes on until the pipe is full, and waits there
    return proc


def _interrupted(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def test_ctrl_c_while_the_model_loads_ends_the_run(model_file: Path) -> None:
    # --verbose sends llama.cpp's load log to stderr; the run is held inside the load,
    # where llama.cpp calls back into Python for each line of it.
    proc = _blocked_on_stderr(
        cli_command("run", "-m", str(model_file), "--verbose", *COUNT),
        until=b"llama_model_loader",
    )
    code, out, err = _interrupted(proc)
    assert code == 130, err[-2000:]
    assert out == ""
    assert "Traceback" not in err


def test_ctrl_c_while_the_program_starts_ends_it_quietly(model_file: Path) -> None:
    # -X importtime writes a line per module imported: the run is held among its imports.
    args = cli_command("run", "-m", str(model_file), *COUNT)
    proc = _blocked_on_stderr([args[0], "-X", "importtime", *args[1:]], until=b"| llmcli\n")
    code, out, err = _interrupted(proc)
    assert code == 130, err[-2000:]
    assert out == ""
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


@pytest.mark.parametrize("delay", [0.1, 0.25, 0.4])
def test_ctrl_c_at_any_moment_exits_130(model_file: Path, delay: float) -> None:
    proc = subprocess.Popen(
        cli_command("run", "-m", str(model_file), *COUNT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(delay)
    code, _, err = _interrupted(proc)
    assert code == 130, err
    assert "Traceback" not in err


def test_ctrl_c_caught_after_an_evaluated_string_still_exits_130(tmp_path: Path) -> None:
    # Where a Ctrl-C lands while a module builds a dataclass (whose methods come from
    # exec), CPython would end the process by SIGINT after llmcli caught it and chose
    # 130. Run as `python -m`, the way that decides its exit code after finalizing.
    package = tmp_path / "interrupted"
    package.mkdir()
    (package / "__main__.py").write_text(
        "from llmcli import cli\n"
        "def build_app(*args, **kwargs):\n"
        "    exec('raise KeyboardInterrupt')\n"
        "cli.build_app = build_app\n"
        "cli.main(['run'])\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    proc = subprocess.run(
        [sys.executable, "-m", "interrupted"], env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == 130, proc.stderr.decode(errors="replace")[-2000:]
    assert b"Traceback" not in proc.stderr


def test_ctrl_c_swallowed_by_an_import_still_ends_the_program() -> None:
    import llmcli

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, llmcli._quit_quietly)
    try:
        with pytest.raises(SystemExit):
            llmcli._quit_quietly(signal.SIGINT, None)  # and some import caught it
        with pytest.raises(KeyboardInterrupt):
            llmcli._ctrl_c_raises()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        llmcli._pressed.clear()
        signal.signal(signal.SIGINT, previous)


# -- Ctrl-C and keys typed while an answer streams to a terminal -----------------------


class Screen:
    """Just enough of a terminal to see what a person sees after Rich's live display:
    printing with wrap, carriage return, line feed, cursor up and down, erasing."""

    def __init__(self, columns: int) -> None:
        self.columns = columns
        self.rows: list[list[str]] = [[]]
        self.row = self.column = 0

    def _line(self) -> list[str]:
        while len(self.rows) <= self.row:
            self.rows.append([])
        return self.rows[self.row]

    def feed(self, text: str) -> Screen:
        tokens = r"\x1b\[([0-9;?]*)([A-Za-z])|\x1b\][^\x07]*\x07|\x1b.|(.)"
        for match in re.finditer(tokens, text, re.DOTALL):
            args, command, char = match.groups()
            if char is not None:
                self._put(char)
            elif command is not None:
                self._control(command, args)
        return self

    def _put(self, char: str) -> None:
        if char == "\r":
            self.column = 0
        elif char == "\n":
            self.row += 1
            self._line()
        elif char >= " ":
            if self.column >= self.columns:  # a terminal wraps at the next character
                self.row, self.column = self.row + 1, 0
            line = self._line()
            line.extend(" " * (self.column + 1 - len(line)))
            line[self.column] = char
            self.column += 1

    def _control(self, command: str, args: str) -> None:
        n = int(args) if args.isdigit() else 1
        if command == "A":
            self.row = max(0, self.row - n)
        elif command == "B":
            self.row += n
        elif command == "G":
            self.column = n - 1
        elif command == "K":
            line = self._line()
            del line[0 if args == "2" else self.column :]
        elif command == "J":
            del self.rows[self.row + 1 :]
            del self._line()[self.column :]

    def lines(self) -> list[str]:
        return ["".join(row).rstrip() for row in self.rows]


POEM = "Write a long poem about the sea, then explain it line by line."


def test_ctrl_c_during_a_streamed_answer_shows_its_last_line_once(model_file: Path) -> None:
    log = io.StringIO()
    child = pexpect.spawn(
        sys.executable,
        [
            *cli_command("run", "-m", str(model_file), "--threads", "1", "--temperature", "0")[1:],
            POEM,
        ],
        env={**os.environ, "TERM": "xterm-256color"},
        encoding="utf-8",
        timeout=120,
        dimensions=(40, 100),
    )
    child.logfile_read = log
    child.expect(r"[A-Za-z]{3,} [A-Za-z]{2,}")  # the answer is streaming
    child.send(CTRL_C)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130, log.getvalue()
    assert "Traceback" not in log.getvalue()
    lines = [line for line in Screen(100).feed(log.getvalue()).lines() if line.strip()]
    assert lines, log.getvalue()
    last = lines[-1]
    # What the live display showed last is erased, then printed once for good.
    assert [line for line in lines if last.startswith(line)] == [last], lines


def test_keys_typed_while_the_chat_answers_start_the_next_message(
    model_file: Path, isolated_home: Path
) -> None:
    chat = Chat(model_file, "--temperature", "0", "-n", "150")
    chat.line("Write a long poem about the sea.", wait=False)
    chat.expect(r"sea\.")  # the message as accepted
    start = len(chat.log.getvalue())
    chat.expect(r"\n[^>\n]*[A-Za-z]{3,}")  # the answer is streaming
    chat.send("hello there")
    chat.expect(">>> ")  # the answer is over
    answer = chat.log.getvalue()[start:].split(">>> ")[0]
    assert "hello" not in answer, answer  # not echoed into the answer
    chat.expect("hello there|" + READY)
    assert chat.child.after == "hello there"  # but typed into the next message
    chat.line("")
    messages = last_chat(isolated_home)["messages"]
    assert messages[2] == {"role": "user", "content": "hello there"}, messages
    assert chat.quit() == 0


# -- answers that end without the model choosing to ------------------------------------

# At temperature 0 the test model answers this with "Aye, aye, aye, ..." until the
# context is full.
PIRATE = ("--temperature", "0", "-s", "You are a pirate.", "--json", "Say aye.")


def test_an_answer_that_keeps_repeating_itself_is_stopped_and_said_so(model_file: Path) -> None:
    proc = run_cli("run", "-m", str(model_file), "--ctx", "1024", *PIRATE, timeout=600)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["finish_reason"] == "repetition"
    assert answer["usage"]["completion_tokens"] < 1000
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "repeating itself" in lines[0], proc.stderr
    # It stopped where the same word or two had come back many times over.
    tail = answer["text"][-MIN_SHORT:]
    assert len(set(re.findall(r"\w+", tail.lower()))) <= 2, tail


def test_a_length_asked_for_lets_an_answer_repeat_itself(model_file: Path) -> None:
    proc = run_cli("run", "-m", str(model_file), "-n", "300", *PIRATE, timeout=600)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 300
    assert proc.stderr == ""


def test_a_full_context_that_ends_the_answer_is_said(model_file: Path) -> None:
    proc = run_cli("run", "-m", str(model_file), "--temperature", "0", "--ctx", "64", COUNT[-1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "context (64 tokens) is full" in lines[0], proc.stderr


@pytest.mark.parametrize(
    "text",
    [
        "".join(f"{i}\n" for i in range(1, 1000)),  # counting
        "| a | b |\n|---|---|\n" + "| 1 | 2 |\n" * 20,  # a table of equal rows
        ("0 " * 20 + "\n") * 20,  # a grid someone asked for
        "=" * 200,  # a long rule
        ("Row, row, row your boat\nGently down the stream\n" * 3 + "Merrily\n") * 4,
    ],
)
def test_text_that_only_looks_repetitive_is_no_loop(text: str) -> None:
    assert cycle_at_end(text) is None


def test_a_short_cycle_repeated_at_length_is_a_loop() -> None:
    assert cycle_at_end("Ahoy! " + "aye, " * 70) == len("aye, ")
    paragraph = "I've got a bit of a... (shaking head)\n\n"
    assert cycle_at_end("Well.\n" + paragraph * 30) == len(paragraph)


def test_a_chat_answer_that_keeps_repeating_itself_is_stopped(
    model_file: Path, isolated_home: Path
) -> None:
    args = ("chat", "-m", str(model_file), "--ctx", "1024", *PIRATE[:4])
    proc = run_cli(*args, input="Say aye.\n", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "repeating itself" in proc.stderr
    kept = last_chat(isolated_home)["messages"][-1]
    assert kept["role"] == "assistant" and kept["content"].lower().count("aye") > 20


def test_an_answer_cut_inside_a_character_drops_its_bytes(model_file: Path, tmp_path: Path) -> None:
    # The test model answers this in Chinese, whose characters span several tokens.
    lines = tmp_path / "cuts.jsonl"
    lines.write_text(
        "\n".join(
            json.dumps({"prompt": "Translate to Chinese: good morning", "max_tokens": n})
            for n in range(1, 25)
        )
    )
    proc = run_cli("run", "-m", str(model_file), "--temperature", "0", "--batch", str(lines))
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(answers) == 24
    assert not any("\ufffd" in a["text"] for a in answers)
    # Some token, cut off by the limit, added only part of a character: that answer
    # reads as the one a token shorter.
    assert any(
        b["finish_reason"] == "length" and a["text"] == b["text"]
        for a, b in itertools.pairwise(answers)
    )
