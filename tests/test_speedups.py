"""Prompt cache across runs: faster, same answers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from clihelpers import cli_command, run_cli

from llmcli.config import user_cache_dir

CITIES = ["Lisbon", "Oslo", "Quito", "Hanoi", "Lagos", "Perth"]
PREAMBLE = "You answer questions about these orders.\n\n" + "\n".join(
    f"Order {1000 + i}: {1 + i % 4} x item {i % 7}, shipped to {CITIES[i % 6]}" for i in range(70)
)
QUESTIONS = ["Which orders went to Oslo?", "How many orders went to Perth?"]


def answer(model: Path, question: str, *flags: str) -> dict[str, object]:
    proc = run_cli(
        "run",
        "-m",
        str(model),
        "--json",
        "--temperature",
        "0",
        "-n",
        "16",
        "-s",
        PREAMBLE,
        *flags,
        question,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def entries() -> list[Path]:
    return sorted((user_cache_dir() / "prompts").glob("*/*.kv"))


def test_second_run_reuses_the_preamble_and_answers_the_same(model_file: Path) -> None:
    first = answer(model_file, QUESTIONS[0])
    assert first["prompt_cache"] == {"reused_tokens": 0, "saved": True}
    assert len(entries()) == 1
    second = answer(model_file, QUESTIONS[1])
    usage = second["usage"]
    reused = second["prompt_cache"]["reused_tokens"]  # type: ignore[index]
    assert usage["cached_prompt_tokens"] == reused  # type: ignore[index]
    # Whole 256-token batches of the ~1,000-token preamble come from disk; the engine's
    # counters show only the rest was evaluated.
    assert reused >= usage["prompt_tokens"] - 300  # type: ignore[index]
    assert usage["prompt_tokens"] - usage["cached_prompt_tokens"] <= 300  # type: ignore[index]
    for question, cached in zip(QUESTIONS, (first, second), strict=True):
        plain = answer(model_file, question, "--no-prompt-cache")
        assert plain["text"] == cached["text"]
        assert plain["prompt_cache"] == {"reused_tokens": 0, "saved": False}


def test_the_same_prompt_again_is_answered_identically(model_file: Path) -> None:
    a = answer(model_file, QUESTIONS[0])
    b = answer(model_file, QUESTIONS[0])
    assert b["prompt_cache"]["reused_tokens"] > 0  # type: ignore[index]
    assert a["text"] == b["text"]


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "corrupt":
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(64)
        path.write_bytes(bytes(data))
    else:  # foreign: not an entry at all
        path.write_bytes(b"this is not a saved state" * 100)


@pytest.mark.parametrize("how", ["truncated", "corrupt", "foreign"])
def test_damaged_entries_are_ignored_and_replaced(model_file: Path, how: str) -> None:
    plain = answer(model_file, QUESTIONS[1], "--no-prompt-cache")
    answer(model_file, QUESTIONS[0])
    (entry,) = entries()
    _damage(entry, how)
    after = answer(model_file, QUESTIONS[1])
    assert after["text"] == plain["text"]
    assert after["prompt_cache"] == {"reused_tokens": 0, "saved": True}
    (replacement,) = entries()
    assert replacement.read_bytes()[:8] == b"LLMCLIKV"


def test_concurrent_runs_with_the_same_prefix_both_succeed(model_file: Path) -> None:
    argv = cli_command(
        "run",
        "-m",
        str(model_file),
        "--json",
        "--temperature",
        "0",
        "-n",
        "8",
        "-s",
        PREAMBLE,
        QUESTIONS[0],
    )
    procs = [
        subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e.decode() for _, e in outs]
    texts = {json.loads(out)["text"] for out, _ in outs}
    assert len(texts) == 1
    assert len(entries()) == 1
    assert not list((user_cache_dir() / "prompts").glob("*/*.tmp"))
    again = answer(model_file, QUESTIONS[0])
    assert again["prompt_cache"]["reused_tokens"] > 0  # type: ignore[index]


def test_batch_saves_a_shared_preamble_once(model_file: Path) -> None:
    items = "\n".join(json.dumps({"prompt": q, "system": PREAMBLE}) for q in QUESTIONS * 2)
    proc = run_cli(
        "run",
        "-m",
        str(model_file),
        "--batch",
        "-",
        "--parallel",
        "1",  # one line at a time: the path with the prompt cache
        "--temperature",
        "0",
        "-n",
        "4",
        input=items + "\n",
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["prompt_cache"]["saved"] for line in lines] == [True, False, False, False]
    # Later items reuse the preamble from memory, not from disk.
    assert all(line["usage"]["cached_prompt_tokens"] > 500 for line in lines[1:])
    assert len(entries()) == 1


def test_cache_command_shows_and_clears(model_file: Path) -> None:
    answer(model_file, QUESTIONS[0])
    shown = json.loads(run_cli("cache", "--json").stdout)
    assert shown["entries"] == 1 and shown["bytes"] > 0
    refused = run_cli("cache", "clear")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert run_cli("cache", "clear", "--yes").returncode == 0
    assert json.loads(run_cli("cache", "--json").stdout)["entries"] == 0


def test_size_bound_evicts_oldest(model_file: Path) -> None:
    answer(model_file, QUESTIONS[0])
    size = entries()[0].stat().st_size
    limit_mb = str(size * 1.5 / (1 << 20))
    proc = run_cli(
        "run",
        "-m",
        str(model_file),
        "-n",
        "1",
        "-s",
        PREAMBLE + "\nMore.",
        "Hi",
        env={"LLMCLI_PROMPT_CACHE_MB": limit_mb},
    )
    assert proc.returncode == 0
    assert len(entries()) == 1


# -- the chat template's preamble, for short prompts ----------------------------------


def short_answer(model: Path, question: str, *flags: str) -> dict[str, object]:
    """Sampled, not greedy: the same seed must give the same answer from any state."""
    proc = run_cli("run", "-m", str(model), "--json", "--seed", "11", "-n", "24", *flags, question)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_a_short_prompt_reuses_the_template_preamble_and_answers_the_same(
    model_file: Path,
) -> None:
    first = short_answer(model_file, "Say hi")
    assert first["prompt_cache"] == {"reused_tokens": 0, "saved": True}
    (entry,) = entries()
    second = short_answer(model_file, "Name a colour")
    reused = second["prompt_cache"]["reused_tokens"]  # type: ignore[index]
    assert second["prompt_cache"]["saved"] is False  # type: ignore[index]
    usage = second["usage"]
    assert usage["cached_prompt_tokens"] == reused  # type: ignore[index]
    # SmolLM2's template puts its default system turn and the user header before the
    # question; the question and the assistant header come after it.
    assert 15 < reused < usage["prompt_tokens"] - 5  # type: ignore[index,operator]
    assert entries() == [entry]
    for question, cached in (("Say hi", first), ("Name a colour", second)):
        plain = short_answer(model_file, question, "--no-prompt-cache")
        assert plain["text"] == cached["text"]
        assert plain["prompt_cache"] == {"reused_tokens": 0, "saved": False}


def test_each_system_prompt_has_its_own_preamble(model_file: Path) -> None:
    short_answer(model_file, "Say hi")
    other = short_answer(model_file, "Say hi", "-s", "Answer in French.")
    assert other["prompt_cache"] == {"reused_tokens": 0, "saved": True}
    assert len(entries()) == 2
    again = short_answer(model_file, "Say bye", "-s", "Answer in French.")
    assert again["prompt_cache"]["reused_tokens"] > 0  # type: ignore[index]


def test_the_preamble_is_every_token_before_the_question(model_file: Path) -> None:
    from llmcli.engine.model import Model
    from llmcli.engine.types import LoadOptions, Message

    with Model(LoadOptions(model_file, n_ctx=256, vocab_only=True)) as llm:
        prompts = [
            llm.chat_prompt(
                [Message(role="system", content="Be brief."), Message(role="user", content=q)]
            )
            for q in ("Hello there", "What is 2 + 2?")
        ]
        (a, n), (b, m) = prompts
        assert n == m > 0 and a[:n] == b[:n]
        assert llm.prompt_text(a[:n]).endswith("Be brief.<|im_end|>\n<|im_start|>user\n")
        assert llm.prompt_text(a[n:]).startswith("Hello there<|im_end|>")
        assert (
            llm.chat_tokens([Message(role="user", content="Hello there")])
            == llm.chat_prompt([Message(role="user", content="Hello there")])[0]
        )


def test_a_batch_line_answers_as_run_does_on_that_prompt_alone(model_file: Path) -> None:
    # Prompts that share more than the preamble with the line before, a system prompt
    # that changes and changes back, and a prompt asked twice. Where llama.cpp's sums
    # depend on how a prompt is cut into batches (not so for this model on every CPU),
    # this holds because each line is cut as `run` cuts it alone.
    items = [
        {"prompt": "Say hi"},
        {"prompt": "Say hi to the sea"},
        {"prompt": "Say hi", "system": "Answer in French."},
        {"prompt": "Name a colour"},
        {"prompt": "Say hi"},
    ]
    proc = run_cli(
        "run",
        "-m",
        str(model_file),
        "--batch",
        "-",
        "--seed",
        "11",
        "-n",
        "24",
        input="\n".join(json.dumps(item) for item in items) + "\n",
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == len(items)
    for item, line in zip(items, lines, strict=True):
        system = ["-s", item["system"]] if "system" in item else []
        alone = short_answer(model_file, item["prompt"], "--no-prompt-cache", *system)
        assert line["text"] == alone["text"], item
