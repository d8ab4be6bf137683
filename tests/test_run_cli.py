"""`llmcli run` end to end: the real CLI in a subprocess, on the real model."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

import pytest
from clihelpers import ESCAPE, cli_command, greedy, run_cli

QUESTION = "What is the capital of France?"


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("llmcli: error: "), lines
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert proc.stdout == ""


def test_piped_output_is_plain_text_ending_with_newline(model_file: Path) -> None:
    proc = greedy(model_file, "--stats", QUESTION)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert proc.stdout.endswith("\n")
    assert not ESCAPE.search(proc.stdout)
    # Stats go to stderr only.
    assert "tok/s" in proc.stderr and "tok/s" not in proc.stdout


def test_greedy_equals_a_direct_engine_run(model_file: Path) -> None:
    import llama_cpp

    from llmcli.engine.loading import weights_repacked
    from llmcli.tuning.identity import model_key
    from llmcli.tuning.setups import SETUPS
    from llmcli.tuning.verdicts import load_verdict

    # The engine setup llmcli measured as safe on this CPU (llama.cpp's own defaults can
    # fault on some), and the same threads, attention kernel and batch sizes: all change
    # the sums.
    verdict = load_verdict(model_key(model_file))
    assert verdict is not None
    setup = SETUPS[verdict.setup]
    threads = 2
    with weights_repacked(setup.repack):
        llm = llama_cpp.Llama(
            str(model_file),
            n_ctx=4096,
            n_threads=threads,
            n_threads_batch=threads,
            flash_attn=True,
            n_batch=256,
            n_ubatch=setup.ubatch or 256,
            verbose=False,
        )
    try:
        direct = llm.create_chat_completion(
            [{"role": "user", "content": QUESTION}], temperature=0, max_tokens=40
        )
    finally:
        llm.close()
    expected = direct["choices"][0]["message"]["content"]  # type: ignore[index]
    proc = greedy(model_file, "--threads", str(threads), QUESTION, n=40)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected + "\n"


def test_json_output_parses_with_sane_numbers(model_file: Path) -> None:
    proc = greedy(model_file, "--json", QUESTION, n=16)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["text"].strip()
    assert data["finish_reason"] in ("stop", "length")
    usage, timings = data["usage"], data["timings"]
    assert usage["prompt_tokens"] > 5
    assert 1 <= usage["completion_tokens"] <= 16
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < timings["load_s"] < 60
    assert 0 < timings["time_to_first_token_s"] < 60
    assert timings["prompt_tokens_per_s"] > 0
    if usage["completion_tokens"] > 1:
        assert timings["generation_tokens_per_s"] > 0
    assert data["model_path"] == str(model_file)


def test_length_limit_is_reported(model_file: Path) -> None:
    proc = run_cli(
        "run",
        "-m",
        str(model_file),
        "--json",
        "--raw",
        "--temperature",
        "0",
        "-n",
        "3",
        "1, 2, 3, 4, 5,",
    )
    data = json.loads(proc.stdout)
    assert data["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 3


def test_stdin_and_argument_combine_as_argument_blank_line_stdin(model_file: Path) -> None:
    combined = greedy(model_file, "--json", "Summarize:", input="The cat sat on the mat.\n")
    together = greedy(model_file, "--json", "Summarize:\n\nThe cat sat on the mat.")
    a, b = json.loads(combined.stdout), json.loads(together.stdout)
    assert a["usage"]["prompt_tokens"] == b["usage"]["prompt_tokens"]
    assert a["text"] == b["text"]


def test_stdin_alone_is_the_prompt(model_file: Path) -> None:
    piped = greedy(model_file, "--json", input=QUESTION)
    argued = greedy(model_file, "--json", QUESTION)
    assert json.loads(piped.stdout)["text"] == json.loads(argued.stdout)["text"]


def test_invalid_utf8_on_stdin_does_not_crash(model_file: Path) -> None:
    proc = greedy(model_file, "Repeat:", input=b"caf\xe9 \xff\xfe ok\n", n=8)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_seed_makes_sampling_reproducible(model_file: Path) -> None:
    args = ("run", "-m", str(model_file), "--temperature", "1.0", "-n", "32", "--json")
    first = run_cli(*args, "--seed", "1234", "Tell me a story.")
    second = run_cli(*args, "--seed", "1234", "Tell me a story.")
    assert json.loads(first.stdout)["text"] == json.loads(second.stdout)["text"]
    assert json.loads(first.stdout)["seed"] == 1234


def test_runs_without_seed_differ(model_file: Path) -> None:
    args = ("run", "-m", str(model_file), "--temperature", "1.0", "-n", "32", "--json")
    texts = {json.loads(run_cli(*args, "Tell me a story.").stdout)["text"] for _ in range(3)}
    assert len(texts) > 1


def test_stop_string_ends_the_answer(model_file: Path) -> None:
    full = json.loads(greedy(model_file, "--json", "--raw", "1, 2, 3, 4,", n=20).stdout)
    assert "7" in full["text"]
    cut = json.loads(greedy(model_file, "--json", "--raw", "--stop", "7", "1, 2, 3, 4,").stdout)
    assert cut["finish_reason"] == "stop"
    assert cut["text"] == full["text"][: full["text"].index("7")]


def test_system_prompt_changes_the_prompt(model_file: Path) -> None:
    plain = json.loads(greedy(model_file, "--json", "Hi", n=1).stdout)
    system = json.loads(greedy(model_file, "--json", "-s", "Answer in French.", "Hi", n=1).stdout)
    assert system["usage"]["prompt_tokens"] != plain["usage"]["prompt_tokens"]


# -- a model without a chat template ----------------------------------------------------


@pytest.fixture(scope="module")
def base_model(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test model with its chat template key renamed, as a base model has none."""
    data = model_file.read_bytes()
    key = b"tokenizer.chat_template"
    assert data.count(key) == 1
    path = tmp_path_factory.mktemp("base") / "base.gguf"
    path.write_bytes(data.replace(key, b"tokenizer.chat_templatX"))
    return path


def test_model_without_template_falls_back_to_completion(base_model: Path) -> None:
    proc = greedy(base_model, "--json", "The capital of France is", n=8)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("no chat template") == 1
    raw = greedy(base_model, "--json", "--raw", "The capital of France is", n=8)
    assert json.loads(proc.stdout)["text"] == json.loads(raw.stdout)["text"]
    assert "no chat template" not in raw.stderr


# -- errors -----------------------------------------------------------------------------


def test_missing_model_file(tmp_path: Path) -> None:
    proc = run_cli("run", "-m", str(tmp_path / "nope.gguf"), "hi")
    assert_one_line_error(proc, 3, "not found", "nope.gguf")


def test_not_a_gguf(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("just some text, not a model\n")
    assert_one_line_error(run_cli("run", "-m", str(bogus), "hi"), 4, "not a GGUF")


def test_truncated_gguf(model_file: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with model_file.open("rb") as src:
        cut.write_bytes(src.read(5_000_000))
    assert_one_line_error(run_cli("run", "-m", str(cut), "hi"), 4, "truncated")


def test_prompt_longer_than_context(model_file: Path) -> None:
    proc = run_cli("run", "-m", str(model_file), "--ctx", "64", "word " * 200)
    assert_one_line_error(proc, 5, "tokens", "--ctx", "64")
    count = int(re.search(r"prompt is (\d+) tokens", proc.stderr).group(1))  # type: ignore[union-attr]
    assert count > 64


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--temperature", "-1"),
        ("--ctx", "0"),
        ("--top-p", "1.5"),
        ("-n", "0"),
        ("--threads", "0"),
        ("--seed", "-5"),
    ],
)
def test_bad_option_values(model_file: Path, option: str, value: str) -> None:
    proc = run_cli("run", "-m", str(model_file), option, value, "hi")
    assert_one_line_error(proc, 2, option if option.startswith("--") else "max-tokens")


def test_no_prompt_points_to_chat(model_file: Path) -> None:
    assert_one_line_error(run_cli("run", "-m", str(model_file)), 2, "llmcli chat")


def test_debug_variable_shows_traceback(tmp_path: Path) -> None:
    proc = run_cli("run", "-m", str(tmp_path / "x.gguf"), "hi", env={"LLMCLI_DEBUG": "1"})
    assert proc.returncode == 3
    assert "Traceback" in proc.stderr


# -- pipes and signals ------------------------------------------------------------------

LONG = (
    "run",
    "--raw",
    "--temperature",
    "0",
    "-n",
    "3000",
    "--ctx",
    "4096",
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,",
)


def test_closed_pipe_ends_quietly(model_file: Path, tmp_path: Path) -> None:
    command = shlex.join(cli_command(LONG[0], "-m", str(model_file), *LONG[1:]))
    err = tmp_path / "stderr.txt"
    shell = f'{command} 2>{err} | head -c 20; echo "rc=${{PIPESTATUS[0]}}"'
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120)
    head, _, status = proc.stdout.rpartition("rc=")
    assert status.strip() == "141", proc.stdout
    assert len(head) == 20
    assert err.read_text() == ""


def test_sigint_keeps_partial_answer_and_exits_130(model_file: Path) -> None:
    proc = subprocess.Popen(
        cli_command(LONG[0], "-m", str(model_file), *LONG[1:]),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(30)  # returns once the answer is streaming
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 130
    assert "Traceback" not in err and "Aborted" not in err
    answer = (head + rest).decode()
    assert len(head) == 30
    assert answer.endswith("\n")
    # Interrupted long before the 3000-token limit.
    assert len(answer) < 3000


def test_python_dash_m_and_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("llmcli ") and "llama-cpp-python 0.3" in proc.stdout


def test_terminal_output_honours_no_color(model_file: Path) -> None:
    import pexpect

    argv = cli_command("run", "-m", str(model_file), "--temperature", "0", "-n", "24", QUESTION)
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80"}
    child = pexpect.spawn(argv[0], argv[1:], env=env, timeout=60)
    child.expect(pexpect.EOF)
    child.close()
    out = child.before.decode("utf-8", errors="replace")
    assert child.exitstatus == 0
    assert out.strip()
    # No colour codes (SGR 30-39), though cursor movement for live redraw is fine.
    assert not re.search(r"\x1b\[[0-9;]*3[0-9](;[0-9]+)*m", out), repr(out)
