"""Looking inside the model: tokenize, embed, similarity and next, on the real model,
plus fast tests of the pure helpers behind them."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from clihelpers import ESCAPE, cli_json, run_cli

from llmcli.engine import pieces, vectors, vocab
from llmcli.engine.model import Model
from llmcli.ui import inspect_views as view

# Two threads fight over two shared cores; one is steadier, and results do not change.
ONE_THREAD = ("--threads", "1")
KING = "The king sat on his throne in the castle."
QUEEN = "The queen wore a golden crown at the palace."
APPLE = "I ate a crunchy red apple for lunch."
QUESTION = "What is the capital of France?"

UNICODE_TEXTS = [
    "plain ASCII text.",
    "naïve café, crème brûlée, Ångström, Øresund",
    "日本語のテキストと中文文本",
    "emoji: 🙂🎉👩‍👩‍👧 and flags 🇫🇷🇯🇵",
    'def f(x):\n\treturn {"a": x ** 2}  # code\n',
    "Ελληνικά, русский, עברית, العربية",
    "  leading spaces, trailing newline\n\n",
]


@pytest.fixture(scope="module")
def vocab_model(model_file: Path) -> Iterator[Model]:
    with vocab.load_vocab(model_file) as llm:
        yield llm


# -- tokenize ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", UNICODE_TEXTS)
def test_tokens_round_trip_to_the_text(vocab_model: Model, text: str) -> None:
    tokens = vocab.tokenize(vocab_model, text)
    assert b"".join(t.data for t in tokens if not t.control) == text.encode()
    # Grouped for display, every character shows whole.
    assert "".join(s.text for s in vocab.spans(tokens)) == text


def test_cli_tokenize_json_round_trips(model_file: Path) -> None:
    for text in UNICODE_TEXTS[1:4]:
        tokens = cli_json("tokenize", "-m", str(model_file), "--json", text)
        assert bytes(b for t in tokens for b in t["bytes"]) == text.encode()


def test_partial_characters_show_as_bytes(model_file: Path) -> None:
    tokens = cli_json("tokenize", "-m", str(model_file), "--json", "日本")
    texts = [t["text"] for t in tokens]
    assert texts[0] == "<0xE6><0x97>"  # the first two bytes of 日, as the model splits it
    assert "\ufffd" not in "".join(texts)


def test_counts_match_the_engine(model_file: Path) -> None:
    import llama_cpp

    text = "Tokenizers cut text into pieces: 日本語, émojis 🙂 and code()."
    llm = llama_cpp.Llama(str(model_file), vocab_only=True, verbose=False)
    try:
        expected = llm.tokenize(text.encode(), add_bos=True, special=False)
    finally:
        llm.close()
    proc = run_cli("tokenize", "-m", str(model_file), "--ids", text)
    assert proc.returncode == 0, proc.stderr
    assert [int(i) for i in proc.stdout.split()] == expected
    assert f"{len(expected)} tokens" in proc.stderr


def test_special_parses_control_tokens(model_file: Path) -> None:
    plain = cli_json("tokenize", "-m", str(model_file), "--json", "<|im_end|>")
    special = cli_json("tokenize", "-m", str(model_file), "--json", "--special", "<|im_end|>")
    assert len(plain) > 1
    assert len(special) == 1 and special[0]["text"] == "<|im_end|>"


def test_piped_tokenize_is_one_token_per_line(model_file: Path) -> None:
    proc = run_cli("tokenize", "-m", str(model_file), input="a\tb\nc")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert all(len(row) == 2 and row[0].isdigit() for row in rows)
    assert "".join(row[1] for row in rows) == "a\\tb\\nc"  # stdin taken exactly, escaped
    assert not ESCAPE.search(proc.stdout)
    assert "characters per token" in proc.stderr and "characters per token" not in proc.stdout


def test_tokenize_on_a_terminal_colours_tokens(model_file: Path) -> None:
    proc = run_cli("tokenize", "-m", str(model_file), "hello world", env={"FORCE_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    assert ESCAPE.search(proc.stdout)
    assert "ids:" in proc.stdout


def test_tokenize_honours_no_color_on_a_terminal(model_file: Path) -> None:
    env = {"FORCE_COLOR": "1", "NO_COLOR": "1"}
    proc = run_cli("tokenize", "-m", str(model_file), "hello world", env=env)
    assert proc.returncode == 0, proc.stderr
    assert not re.search(r"\x1b\[[0-9;]*(3|4|9|10)[0-9]m", proc.stdout), repr(proc.stdout)
    assert "│hello│ world" in proc.stdout  # token boundaries without colour


def test_empty_stdin_is_zero_tokens(model_file: Path) -> None:
    # An empty stdin is a text of zero tokens, not an error.
    proc = run_cli("tokenize", "-m", str(model_file), "--json", input="")
    assert proc.returncode == 0 and json.loads(proc.stdout) == []


# -- embed -------------------------------------------------------------------------------------


def test_embeddings_have_the_model_width_and_are_deterministic(model_file: Path) -> None:
    args = ("embed", "-m", str(model_file), *ONE_THREAD)
    first = run_cli(*args, "hello world", "a second text")
    second = run_cli(*args, input="hello world\n\na second text\n")
    assert first.returncode == 0, first.stderr
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["hello world", "a second text"]
    assert all(len(r["embedding"]) == 576 for r in rows)
    assert first.stdout == second.stdout  # stdin lines give the same vectors


def test_normalize_gives_unit_vectors(model_file: Path) -> None:
    proc = run_cli("embed", "-m", str(model_file), *ONE_THREAD, "--normalize", "a", "bb")
    for line in proc.stdout.splitlines():
        vector = json.loads(line)["embedding"]
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-6)


def test_text_longer_than_the_context_is_refused(model_file: Path) -> None:
    proc = run_cli("embed", "-m", str(model_file), "--ctx", "16", "word " * 50)
    assert proc.returncode == 5 and "--ctx" in proc.stderr


# -- similarity ----------------------------------------------------------------------------------


def test_similarity_matrix_and_king_queen_apple(model_file: Path) -> None:
    data = cli_json("similarity", "-m", str(model_file), *ONE_THREAD, "--json", KING, QUEEN, APPLE)
    m = data["matrix"]
    assert data["texts"] == [KING, QUEEN, APPLE]
    for i in range(3):
        assert m[i][i] == pytest.approx(1.0)
        for j in range(3):
            assert m[i][j] == m[j][i]
            assert -1.0 <= m[i][j] <= 1.0
    king_queen, king_apple, queen_apple = m[0][1], m[0][2], m[1][2]
    assert king_queen > max(king_apple, queen_apple) + 0.05


def test_similarity_piped_is_tsv(model_file: Path) -> None:
    proc = run_cli("similarity", "-m", str(model_file), *ONE_THREAD, input=f"{KING}\n{APPLE}\n")
    assert proc.returncode == 0, proc.stderr
    lines = [line.split("\t") for line in proc.stdout.splitlines()]
    assert lines[0] == ["", KING, APPLE]
    assert lines[1][0] == KING and float(lines[1][1]) == pytest.approx(1.0)


def test_similarity_on_a_terminal_is_a_heat_map(model_file: Path) -> None:
    env = {"FORCE_COLOR": "1", "COLUMNS": "160"}
    proc = run_cli("similarity", "-m", str(model_file), *ONE_THREAD, KING, APPLE, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "cosine similarity" in proc.stdout and "1.000" in proc.stdout
    assert "on rgb" not in proc.stdout and ESCAPE.search(proc.stdout)


def test_similarity_needs_two_texts(model_file: Path) -> None:
    proc = run_cli("similarity", "-m", str(model_file), "alone")
    assert proc.returncode == 2 and "two texts" in proc.stderr


# -- next --------------------------------------------------------------------------------------


def test_next_token_probabilities(model_file: Path) -> None:
    data = cli_json("next", "-m", str(model_file), *ONE_THREAD, "--json", "-k", "20", QUESTION)
    probs = [c["probability"] for c in data["steps"][0]["candidates"]]
    assert len(probs) == 20
    assert all(0 < p <= 1 for p in probs)
    assert probs == sorted(probs, reverse=True)
    assert sum(probs) <= 1 + 1e-9


def test_top_token_is_what_greedy_run_says(model_file: Path) -> None:
    top = cli_json("next", "-m", str(model_file), *ONE_THREAD, "--json", "--chat", QUESTION)
    run = cli_json(
        "run",
        "-m",
        str(model_file),
        *ONE_THREAD,
        "--json",
        "--temperature",
        "0",
        "-n",
        "1",
        QUESTION,
    )
    assert top["steps"][0]["candidates"][0]["text"] == run["text"]
    assert top["prompt_tokens"] == run["usage"]["prompt_tokens"]


def test_steps_follow_the_greedy_continuation(model_file: Path) -> None:
    prompt = "The capital of France is"
    data = cli_json(
        "next", "-m", str(model_file), *ONE_THREAD, "--json", "--raw", "--steps", "4", prompt
    )
    run = cli_json(
        "run",
        "-m",
        str(model_file),
        *ONE_THREAD,
        "--json",
        "--raw",
        "--temperature",
        "0",
        "-n",
        "4",
        prompt,
    )
    assert len(data["steps"]) == 4
    assert data["text"] == run["text"]
    assert "".join(s["candidates"][0]["text"] for s in data["steps"]) == run["text"]


def test_next_on_a_terminal_is_a_bar_chart(model_file: Path) -> None:
    env = {"FORCE_COLOR": "1", "COLUMNS": "120"}
    args = ("next", "-m", str(model_file), *ONE_THREAD, "--raw", "--steps", "2", "-k", "3")
    proc = run_cli(*args, "Once upon a time", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "█" in proc.stdout and "%" in proc.stdout
    assert "step 2" in proc.stdout and "greedy continuation" in proc.stdout


def test_next_piped_is_tsv(model_file: Path) -> None:
    proc = run_cli("next", "-m", str(model_file), *ONE_THREAD, "--raw", "-k", "3", "Hello")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "step\trank\tid\tprobability\ttoken"
    assert [line.split("\t")[1] for line in lines[1:]] == ["1", "2", "3"]


# -- pure helpers --------------------------------------------------------------------------------


def test_piece_text_marks_partial_characters() -> None:
    assert pieces.piece_text(" \xe6".encode("latin-1")) == " <0xE6>"
    assert pieces.piece_text("é".encode()) == "é"


def test_spans_group_split_characters() -> None:
    data = "日".encode()
    parts = [b"a", data[:2], data[2:]]
    tokens = [vocab.Token(i, p, pieces.piece_text(p)) for i, p in enumerate(parts)]
    spans = vocab.spans(tokens)
    assert [s.text for s in spans] == ["a", "日"]
    assert [len(s.tokens) for s in spans] == [1, 2]
    # A character cut off at the end stays as bytes.
    assert [s.text for s in vocab.spans(tokens[:2])] == ["a", "<0xE6><0x97>"]


def test_softmax_and_top_k() -> None:
    import numpy as np

    from llmcli.engine.distribution import softmax, top_k

    logits = np.array([1.0, 3.0, 3.0, -1000.0, 2.0], dtype=np.float32)
    probs = softmax(logits)
    assert math.isclose(float(probs.sum()), 1.0)
    assert top_k(probs, 3) == [1, 2, 4]  # ties go to the lower id, as argmax does
    assert softmax(np.array([1e4, 0.0], dtype=np.float32))[0] == 1.0  # no overflow


def test_cosine_matrix_and_unit() -> None:
    m = vectors.cosine_matrix([[1.0, 0.0], [1.0, 1.0], [-2.0, 0.0]])
    assert m[0][1] == m[1][0] == pytest.approx(math.sqrt(0.5))
    assert m[0][2] == -1.0 and m[2][2] == 1.0
    assert vectors.unit([3.0, 4.0]) == [0.6, 0.8]
    assert vectors.unit([0.0, 0.0]) == [0.0, 0.0]


def test_view_helpers() -> None:
    assert view.escape("a\tb\nc\\") == "a\\tb\\nc\\\\"
    assert view.bar(1.0, 4) == "████"
    assert view.bar(0.5, 4) == "██  "
    assert view.bar(0.0, 3) == "   "
    assert view.tail("x" * 100, 10) == "…" + "x" * 9
    assert view.token_summary(4, 10) == "4 tokens · 10 characters · 2.50 characters per token"


@pytest.mark.parametrize(("declared", "expected"), [(None, "mean"), (0, "mean"), (2, "model")])
def test_pooling_follows_the_gguf(tmp_path: Path, declared: int | None, expected: str) -> None:
    from test_show import write_gguf

    extra = {"llama.pooling_type": declared} if declared is not None else {}
    path = write_gguf(tmp_path / "m.gguf", tensors={"a": (4,)}, extra=extra)
    assert vectors.pooling_for(path) == expected
