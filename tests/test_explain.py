"""`llmcli explain` on the real model: its JSON agrees with the single inside commands on
the same text, its page fits terminals and pipes, and odd inputs get clear answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from clihelpers import ESCAPE, cli_json, run_cli
from rich.cells import cell_len

from llmcli.errors import ExitCode
from llmcli.explain.prose import TITLES

ONE_THREAD = ("--threads", "1")
TEXT = "The capital of France is"
STEPS = 4
SECTIONS = ["tokens", "embeddings", "network", "attention", "lens", "next", "continuation"]


@pytest.fixture(scope="module")
def story(model_file: Path) -> dict[str, Any]:
    args = ("explain", "-m", str(model_file), *ONE_THREAD, "--json", "--steps", str(STEPS))
    data: dict[str, Any] = cli_json(*args, TEXT)
    return data


def test_json_has_every_section_in_order(story: dict[str, Any]) -> None:
    assert list(story) == SECTIONS


def test_tokens_are_what_tokenize_says(story: dict[str, Any], model_file: Path) -> None:
    tokens = cli_json("tokenize", "-m", str(model_file), "--json", TEXT)
    assert story["tokens"]["tokens"] == tokens
    assert story["tokens"]["count"] == len(tokens)
    assert story["tokens"]["characters"] == len(TEXT)
    assert story["tokens"]["chat_template"] is False


def test_next_and_continuation_are_what_next_says(story: dict[str, Any], model_file: Path) -> None:
    args = ("next", "-m", str(model_file), *ONE_THREAD, "--json", "-k", "5")
    nxt = cli_json(*args, "--steps", str(STEPS), TEXT)
    assert story["next"]["prompt_tokens"] == nxt["prompt_tokens"]
    ours, theirs = story["next"]["candidates"], nxt["steps"][0]["candidates"]
    assert [c["id"] for c in ours] == [c["id"] for c in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)
    assert ours[0]["text"] == " Paris"
    chosen = [s["candidates"][0] for s in nxt["steps"]]
    assert [t["id"] for t in story["continuation"]["tokens"]] == [c["id"] for c in chosen]
    assert story["continuation"]["text"] == nxt["text"]


def test_sampling_settings_reshape_the_distribution(story: dict[str, Any]) -> None:
    own = story["next"]["candidates"][0]["probability"]
    sharper, flatter = story["next"]["settings"]
    assert sharper["temperature"] < 1 < flatter["temperature"]
    assert sharper["candidates"][0]["probability"] > own > flatter["candidates"][0]["probability"]
    # Top-p keeps the fewest tokens that reach p, so their probabilities (at temperature
    # 1) sum to at least p: the model's own top five do not reach 0.9 here.
    assert 5 < flatter["kept"] < 1000


def test_lens_agrees_with_lens(story: dict[str, Any], model_file: Path) -> None:
    lens = cli_json("lens", "-m", str(model_file), *ONE_THREAD, "--json", TEXT)
    ours = story["lens"]["layers"]
    assert len(ours) == len(lens["layers"]) == story["network"]["layers"]
    assert story["lens"]["first"] == 0  # a short text: every position
    # The lens pass is computed as `lens` computes it: the same numbers.
    for mine, other in zip(ours, lens["layers"], strict=True):
        for a, b in zip(mine["positions"], other["positions"], strict=True):
            assert [g["id"] for g in a] == [g["id"] for g in b]
            assert [g["probability"] for g in a] == pytest.approx(
                [g["probability"] for g in b], abs=1e-5
            )
    # And its last layer is the model's prediction, as `next` gives it.
    final = ours[-1]["positions"][-1]
    assert [g["id"] for g in final] == [c["id"] for c in story["next"]["candidates"]]


def test_attention_agrees_with_attention(story: dict[str, Any], model_file: Path) -> None:
    a = story["attention"]
    layer, head = a["layer"], a["head"]
    args = ("attention", "-m", str(model_file), *ONE_THREAD, "--json")
    theirs = cli_json(*args, "--layer", str(layer), "--head", str(head), TEXT)
    assert (a["layers"], a["heads"], a["kv_heads"]) == (
        theirs["layers"],
        theirs["heads"],
        theirs["kv_heads"],
    )
    for mine, other in zip(a["map"], theirs["maps"][0]["weights"], strict=True):
        assert mine == pytest.approx(other, abs=1e-4)
    for mine, other in zip(a["overview"], theirs["overview"], strict=True):
        assert (mine["layer"], mine["head"], mine["kind"]) == (
            other["layer"],
            other["head"],
            other["kind"],
        )
        assert mine["previous"] == pytest.approx(other["previous"], abs=1e-4)
    # The shown head is the clearest previous-token head of the model.
    shown = next(s for s in a["overview"] if (s["layer"], s["head"]) == (layer, head))
    assert shown["kind"] == "previous"
    assert shown["previous"] == max(s["previous"] for s in a["overview"])
    # The strip: the last token's row in every layer, heads averaged, as the mean map has it.
    mean = cli_json(*args, "--layer", str(layer), TEXT)["maps"][0]["weights"][-1]
    assert a["last_token"][layer] == pytest.approx(mean, abs=1e-4)
    assert a["layer_means"][layer][-1] == pytest.approx(mean, abs=1e-4)
    for row in a["last_token"]:
        assert sum(row) == pytest.approx(1.0, abs=1e-3)


def test_embedding_neighbours_are_near_and_not_themselves(story: dict[str, Any]) -> None:
    e = story["embeddings"]
    assert e["width"] == story["network"]["width"] == 576
    by_text = {n["text"]: n for n in e["neighbours"]}
    france = by_text[" France"]
    assert all(n["id"] != france["id"] for n in france["nearest"])
    sims = [n["similarity"] for n in france["nearest"]]
    assert sims == sorted(sims, reverse=True) and 0 < sims[-1] < sims[0] <= 1
    # Other countries lie close to France in the embedding table.
    assert {" Spain", " Germany", " Italy"} & {n["text"] for n in france["nearest"]}


def _lines(text: str) -> list[str]:
    return text.splitlines()


@pytest.mark.parametrize("columns", [80, 100])
def test_piped_page_is_plain_and_fits(model_file: Path, columns: int) -> None:
    proc = run_cli(
        "explain", "-m", str(model_file), *ONE_THREAD, TEXT, env={"COLUMNS": str(columns)}
    )
    assert proc.returncode == 0, proc.stderr
    assert not ESCAPE.search(proc.stdout)
    too_wide = [line for line in _lines(proc.stdout) if cell_len(line) > columns]
    assert too_wide == []
    for title in TITLES.values():
        assert title in proc.stdout
    assert "“ Paris”" in proc.stdout and "78.0%" in proc.stdout


@pytest.mark.parametrize("columns", [80, 100])
def test_terminal_page_fits(model_file: Path, columns: int) -> None:
    env = {"FORCE_COLOR": "1", "COLUMNS": str(columns)}
    text = "東京は日本の首都です。 The capital of Japan is"
    proc = run_cli("explain", "-m", str(model_file), *ONE_THREAD, text, env=env)
    assert proc.returncode == 0, proc.stderr
    assert ESCAPE.search(proc.stdout), "a terminal gets styled headings"
    visible = ESCAPE.sub("", proc.stdout)
    too_wide = [line for line in _lines(visible) if cell_len(line.rstrip()) > columns]
    assert too_wide == []
    plain = run_cli(
        "explain", "-m", str(model_file), *ONE_THREAD, text, env={**env, "NO_COLOR": "1"}
    )
    assert "\x1b[3" not in plain.stdout  # no colours, whatever the styles


def test_text_longer_than_the_context_is_refused_before_work(model_file: Path) -> None:
    text = " ".join(["word"] * 40)
    proc = run_cli("explain", "-m", str(model_file), *ONE_THREAD, "--ctx", "16", text)
    assert proc.returncode == ExitCode.CONTEXT_OVERFLOW
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert "the text is 40 tokens; at most 16" in proc.stderr and "--ctx" in proc.stderr


@pytest.mark.parametrize("text", ["", "  \n"])
def test_an_empty_text_is_a_usage_error(model_file: Path, text: str) -> None:
    proc = run_cli("explain", "-m", str(model_file), text)
    assert proc.returncode == ExitCode.USAGE
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert "no prompt given" in proc.stderr


@pytest.fixture(scope="module")
def base_model(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test model with its chat template key renamed, as a base model has none."""
    data = model_file.read_bytes()
    key = b"tokenizer.chat_template"
    assert data.count(key) == 1
    path = tmp_path_factory.mktemp("base") / "base.gguf"
    path.write_bytes(data.replace(key, b"tokenizer.chat_templatX"))
    return path


def test_chat_on_a_model_without_template_reads_the_text(
    base_model: Path, story: dict[str, Any]
) -> None:
    args = ("explain", "-m", str(base_model), *ONE_THREAD, "--json", "--steps", str(STEPS))
    proc = run_cli(*args, "--chat", TEXT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("no chat template; using the plain text") == 1
    data = json.loads(proc.stdout)
    assert data["tokens"]["chat_template"] is False
    assert data["tokens"]["tokens"] == story["tokens"]["tokens"]


def test_chat_wraps_the_text_in_the_template(model_file: Path, story: dict[str, Any]) -> None:
    args = ("explain", "-m", str(model_file), *ONE_THREAD, "--json", "--steps", "1")
    data = cli_json(*args, "--chat", TEXT)
    assert data["tokens"]["chat_template"] is True
    texts = [t["text"] for t in data["tokens"]["tokens"]]
    assert "<|im_start|>" in texts and data["tokens"]["count"] > story["tokens"]["count"]
    # The same wrapping as `next --chat`.
    nxt = cli_json("next", "-m", str(model_file), *ONE_THREAD, "--json", "--chat", TEXT)
    assert data["next"]["prompt_tokens"] == nxt["prompt_tokens"]


def test_one_rule_for_the_inside_commands(model_file: Path) -> None:
    """Read as is by default, so `next` and `lens` agree on the next token."""
    nxt = cli_json("next", "-m", str(model_file), *ONE_THREAD, "--json", TEXT)
    lens = cli_json("lens", "-m", str(model_file), *ONE_THREAD, "--json", "-k", "1", TEXT)
    assert nxt["steps"][0]["candidates"][0]["id"] == lens["layers"][-1]["positions"][-1][0]["id"]
    for command in ("next", "lens", "attention", "explain"):
        help_text = " ".join(run_cli(command, "--help").stdout.split())
        assert "The text is read as is" in help_text and "--chat" in help_text, command


def test_a_longer_text_keeps_one_layer_whole(model_file: Path) -> None:
    """Past 64 tokens every layer's maps are no longer kept: the map shown is a head of
    the middle layer, as `attention` maps by default, and the lens keeps its last columns."""
    text = "One, two, three, four, five, six, seven, eight, nine, ten. " * 4
    args = ("explain", "-m", str(model_file), *ONE_THREAD, "--json", "--steps", "1")
    data = cli_json(*args, text)
    n = data["tokens"]["count"]
    a = data["attention"]
    assert n > 64
    assert a["layer_means"] is None and a["layer"] == a["layers"] // 2
    assert len(a["map"]) == n and len(a["map"][-1]) == n
    assert len(data["lens"]["layers"][0]["positions"]) == 12
    assert data["lens"]["first"] == n - 12
