"""The answer log through the CLI: run, --batch and chat write it, `llmcli logs` reads it,
`--continue` carries a conversation on, and a log that cannot be written never costs an
answer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from clihelpers import cli_command, run_cli

from llmcli.errors import ExitCode

FAST = ("--temperature", "0", "-n", "8", "--threads", "2")


def logs(*args: str) -> list[dict[str, Any]]:
    proc = run_cli("logs", "--json", "--count", "0", *args)
    assert proc.returncode == 0, proc.stderr
    entries: list[dict[str, Any]] = json.loads(proc.stdout)
    return entries


def log_file() -> Path:
    return Path(os.environ["LLMCLI_HOME"]) / "logs.db"


def test_a_run_is_logged_with_what_shaped_it(model_file: Path) -> None:
    proc = run_cli("run", "-m", str(model_file), *FAST, "-s", "Be brief.", "Say hi")
    assert proc.returncode == 0, proc.stderr
    (entry,) = logs()
    assert entry["prompt"] == "Say hi" and entry["system"] == "Be brief."
    assert entry["answer"] == proc.stdout.rstrip("\n")
    assert entry["model"] == model_file.name and entry["command"] == "run"
    assert entry["model_digest"].startswith("sample:")
    assert entry["options"]["temperature"] == 0 and entry["options"]["max_tokens"] == 8
    assert entry["completion_tokens"] > 0 and entry["prompt_tokens"] > 0
    assert entry["duration_s"] > 0 and entry["finish_reason"] in ("stop", "length")
    shown = run_cli("logs")
    assert shown.returncode == 0 and "Say hi" in shown.stdout and entry["id"] in shown.stdout
    assert logs("-q", "hi")[0]["id"] == entry["id"]
    assert logs("-q", "nowhere-to-be-found") == []


def test_no_log_env_and_config_switch_it_off(model_file: Path) -> None:
    assert run_cli("run", "-m", str(model_file), *FAST, "--no-log", "one").returncode == 0
    assert (
        run_cli("run", "-m", str(model_file), *FAST, "two", env={"LLMCLI_LOG": "0"}).returncode == 0
    )
    off = run_cli("logs", "off")
    assert off.returncode == 0, off.stderr
    assert run_cli("run", "-m", str(model_file), *FAST, "three").returncode == 0
    status = json.loads(run_cli("logs", "status", "--json").stdout)
    assert status["logging"] is False and "config" in status["because"]
    assert logs() == []
    # The command line wins over the config file.
    assert run_cli("run", "-m", str(model_file), *FAST, "--log", "four").returncode == 0
    assert [e["prompt"] for e in logs()] == ["four"]
    assert run_cli("logs", "on").returncode == 0
    assert run_cli("run", "-m", str(model_file), *FAST, "five").returncode == 0
    assert [e["prompt"] for e in logs()] == ["four", "five"]


def test_continue_gives_the_model_the_earlier_turns(model_file: Path) -> None:
    first = run_cli("run", "-m", str(model_file), *FAST, "My name is Ada. Say hi.")
    assert first.returncode == 0, first.stderr
    shown = run_cli("run", "-m", str(model_file), "--continue", "--show-prompt", "What is my name?")
    assert shown.returncode == 0, shown.stderr
    earlier = shown.stdout.index("My name is Ada.")
    assert shown.stdout.index(first.stdout.strip()) > earlier
    assert shown.stdout.index("What is my name?") > earlier
    second = run_cli("run", "-m", str(model_file), *FAST, "--continue", "What is my name?")
    assert second.returncode == 0, second.stderr
    a, b = logs()
    assert a["conversation_id"] == b["conversation_id"]
    # --cid takes the conversation's id, or its first characters.
    third = run_cli("run", "-m", str(model_file), *FAST, "--cid", a["conversation_id"][:12], "Bye.")
    assert third.returncode == 0, third.stderr
    assert {e["conversation_id"] for e in logs()} == {a["conversation_id"]}
    assert len(logs("--cid", a["conversation_id"][:12])) == 3
    unknown = run_cli("run", "-m", str(model_file), *FAST, "--cid", "0123456789", "Bye.")
    assert unknown.returncode == ExitCode.USAGE
    assert unknown.stderr.count("\n") == 1 and "no logged conversation" in unknown.stderr


def test_a_batch_logs_each_line_and_four_at_once_lose_nothing(
    model_file: Path, tmp_path: Path
) -> None:
    lines = tmp_path / "prompts.txt"
    lines.write_text("\n".join(f"Count to {i}" for i in range(6)) + "\n")
    procs = [
        subprocess.Popen(
            cli_command("run", "-m", str(model_file), *FAST, "--batch", str(lines)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "not logged" not in err
    entries = logs()
    assert len(entries) == 24
    assert sorted(e["prompt"] for e in entries) == sorted([f"Count to {i}" for i in range(6)] * 4)
    assert len({e["conversation_id"] for e in entries}) == 24
    assert {e["command"] for e in entries} == {"batch"}


def test_ctrl_c_logs_the_part_answered(model_file: Path) -> None:
    proc = subprocess.Popen(
        cli_command(
            "run",
            "-m",
            str(model_file),
            "--temperature",
            "0",
            "-n",
            "3000",
            "--threads",
            "2",
            "Write a very long story about a dragon.",
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    head = proc.stdout.read(30)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED
    (entry,) = logs()
    assert entry["finish_reason"] == "interrupted"
    assert entry["answer"] and (head + rest).decode().startswith(entry["answer"][:30])


def test_a_locked_log_costs_the_entry_never_the_answer(model_file: Path) -> None:
    assert run_cli("run", "-m", str(model_file), *FAST, "first").returncode == 0
    holder = sqlite3.connect(log_file(), isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        start = time.monotonic()
        proc = run_cli("run", "-m", str(model_file), *FAST, "second")
        took = time.monotonic() - start
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert proc.returncode == 0 and proc.stdout.strip()
    assert proc.stderr.strip().splitlines()[-1] == (
        "llmcli: this answer was not logged: the log database is locked by another program"
    )
    assert took < 60
    assert [e["prompt"] for e in logs()] == ["first"]


def test_a_damaged_log_costs_the_entry_never_the_answer(model_file: Path) -> None:
    log_file().parent.mkdir(parents=True, exist_ok=True)
    log_file().write_bytes(b"not a database" * 100)
    proc = run_cli("run", "-m", str(model_file), *FAST, "hello")
    assert proc.returncode == 0 and proc.stdout.strip()
    assert "this answer was not logged: the log database is damaged" in proc.stderr
    shown = run_cli("logs")
    assert shown.returncode == 1 and shown.stderr.count("\n") == 1 and "damaged" in shown.stderr


def _in_own_mount(script: str) -> subprocess.CompletedProcess[str]:
    """`script` run by sh in a mount namespace of its own (no privileges needed where
    user namespaces are allowed), so a test can mount a small or read-only file system."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this machine allows no user namespaces")
    return subprocess.run(
        ["unshare", "-Urm", "sh", "-ec", script],
        capture_output=True,
        text=True,
        timeout=180,
        env=os.environ,
    )


def _run_line(model_file: Path, prompt: str) -> str:
    return " ".join(f"'{a}'" for a in [*cli_command("run", "-m", str(model_file), *FAST, prompt)])


def test_a_full_disk_costs_the_entry_never_the_answer(model_file: Path, tmp_path: Path) -> None:
    home = Path(os.environ["LLMCLI_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    # A file system of 64 KiB, filled to the last block before the answer is logged.
    proc = _in_own_mount(
        f"mount -t tmpfs -o size=64k tmpfs '{home}'\n"
        f"dd if=/dev/zero of='{home}/filler' bs=4k count=100 2>/dev/null || true\n"
        f"exec {_run_line(model_file, 'hello')}"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert proc.stderr.strip().splitlines()[-1].startswith("llmcli: this answer was not logged:")
    assert "full" in proc.stderr or "No space" in proc.stderr


def test_a_read_only_log_costs_the_entry_never_the_answer(model_file: Path) -> None:
    assert run_cli("run", "-m", str(model_file), *FAST, "first").returncode == 0
    home = Path(os.environ["LLMCLI_HOME"])
    proc = _in_own_mount(
        f"mount --bind '{home}' '{home}'\nmount -o remount,bind,ro '{home}'\n"
        f"exec {_run_line(model_file, 'second')}"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "this answer was not logged" in proc.stderr
    assert [e["prompt"] for e in logs()] == ["first"]


def test_rm_by_id_and_age(model_file: Path) -> None:
    for prompt in ("one", "two"):
        assert run_cli("run", "-m", str(model_file), *FAST, prompt).returncode == 0
    one, two = logs()
    gone = run_cli("logs", "rm", one["id"][:20])
    assert gone.returncode == 0 and "deleted 1 answers" in gone.stderr
    assert [e["prompt"] for e in logs()] == ["two"]
    kept = run_cli("logs", "rm", "--older-than", "1d")
    assert kept.returncode == 0 and "deleted 0 answers" in kept.stderr
    assert run_cli("logs", "rm").returncode == ExitCode.USAGE
    assert run_cli("logs", "rm", "--older-than", "soon").returncode == ExitCode.USAGE
    assert [e["id"] for e in logs()] == [two["id"]]


def test_chat_turns_are_one_conversation_that_continue_picks_up(model_file: Path) -> None:
    first = run_cli(
        "chat",
        "-m",
        str(model_file),
        *FAST,
        "-s",
        "Be brief.",
        input="My name is Ada.\nWhat is my name?\n",
    )
    assert first.returncode == 0, first.stderr
    a, b = logs()
    assert (a["prompt"], b["prompt"]) == ("My name is Ada.", "What is my name?")
    assert a["command"] == b["command"] == "chat" and a["system"] == "Be brief."
    assert a["conversation_id"] == b["conversation_id"]
    again = run_cli("chat", "-m", str(model_file), *FAST, "--continue", input="Bye.\n")
    assert again.returncode == 0, again.stderr
    assert "continuing conversation" in again.stderr and "2 earlier turns" in again.stderr
    *_, c = logs()
    assert c["prompt"] == "Bye." and c["conversation_id"] == a["conversation_id"]
    assert c["system"] == "Be brief."  # the conversation's system prompt carries on
    clash = run_cli("chat", "-m", str(model_file), "--continue", "--resume", input="x\n")
    assert clash.returncode == ExitCode.USAGE


def test_serve_logs_only_when_asked(model_file: Path) -> None:
    from test_serve import start_server

    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hi"},
        ],
        "max_tokens": 8,
        "temperature": 0,
    }
    quiet = start_server(model_file, "--ctx", "512")
    try:
        assert quiet.post("/v1/chat/completions", body)[0] == 200
    finally:
        quiet.proc.send_signal(signal.SIGTERM)
        assert quiet.proc.wait(timeout=60) == 0
    assert logs() == []
    logging = start_server(model_file, "--ctx", "512", "--log")
    try:
        status, _, whole = logging.post("/v1/chat/completions", body)
        assert status == 200
        streamed = logging.client().completions.create(
            model=model_file.name,
            prompt="Once upon a time",
            max_tokens=8,
            temperature=0,
            stream=True,
        )
        text = "".join(c.choices[0].text for c in streamed)
    finally:
        logging.proc.send_signal(signal.SIGTERM)
        assert logging.proc.wait(timeout=60) == 0
    a, b = logs()
    assert (a["prompt"], a["system"], a["command"]) == ("Say hi", "Be brief.", "serve")
    assert a["answer"] == whole["choices"][0]["message"]["content"]
    assert a["completion_tokens"] == whole["usage"]["completion_tokens"]
    assert (b["prompt"], b["answer"]) == ("Once upon a time", text)
    assert a["conversation_id"] != b["conversation_id"]
