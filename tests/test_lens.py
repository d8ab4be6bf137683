"""The logit lens from the real engine: its last layer is the model's own prediction, and
the output head applied to earlier layers is the model's own head."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from clihelpers import cli_json, run_cli

from llmcli.engine import capture, lens
from llmcli.engine.distribution import softmax
from llmcli.engine.model import Model
from llmcli.engine.types import LoadOptions
from llmcli.gguf_file.info import read_tensor
from llmcli.ui.lens_view import lens_tsv

ONE_THREAD = ("--threads", "1")
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def llm(model_file: Path) -> Iterator[Model]:
    with Model(LoadOptions(model_file, n_ctx=256, n_threads=1)) as model:
        yield model


def test_last_layer_is_what_next_says(model_file: Path) -> None:
    found = cli_json("lens", "-m", str(model_file), *ONE_THREAD, "--json", PROMPT)
    nxt = cli_json("next", "-m", str(model_file), *ONE_THREAD, "--json", "--raw", PROMPT)
    assert len(found["layers"]) == 30
    assert len(found["tokens"]) == nxt["prompt_tokens"]
    last = found["layers"][-1]["positions"][-1]
    candidates = nxt["steps"][0]["candidates"][:5]
    assert [g["id"] for g in last] == [c["id"] for c in candidates]
    for guess, c in zip(last, candidates, strict=True):
        assert guess["probability"] == pytest.approx(c["probability"], abs=1e-5)
    assert last[0]["text"] == " Paris"


class _Recorder:
    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.data: dict[str, list[np.ndarray]] = {}

    def wants(self, name: str) -> bool:
        return name in self.names

    def take(self, name: str, data: np.ndarray) -> None:
        self.data.setdefault(name, []).append(data.reshape(-1, data.shape[-1]))


def test_the_numpy_head_is_the_models_head(llm: Model, model_file: Path) -> None:
    tokens = llm.completion_tokens("Water boils at one hundred degrees")
    recorder = _Recorder({"l_out-29", "result_output"})
    capture.forward(llm, tokens, recorder, outputs_from=0)
    residual = np.concatenate(recorder.data["l_out-29"])
    engine = np.concatenate(recorder.data["result_output"])
    assert residual.shape == (len(tokens), 576) and engine.shape == (len(tokens), 49152)
    ours = lens.output_head(model_file).logits(residual)
    # The engine rounds activations to 8 bits before its output product; nothing else differs.
    assert np.abs(ours - engine).max() < 1.0
    for row_ours, row_engine in zip(ours, engine, strict=True):
        assert int(np.argmax(row_ours)) == int(np.argmax(row_engine))
        assert np.abs(softmax(row_ours) - softmax(row_engine)).max() < 0.05


def test_every_layer_and_position_has_a_ranked_guess(llm: Model) -> None:
    tokens = llm.completion_tokens("one two three four")
    found = lens.lens(llm, tokens, top_k_tokens=3)
    assert len(found.guesses) == 30 and len(found.tokens) == len(tokens)
    for positions in found.guesses:
        assert len(positions) == len(tokens)
        for guesses in positions:
            probs = [g.probability for g in guesses]
            assert len(probs) == 3 and probs == sorted(probs, reverse=True)
            assert probs[-1] > 0 and sum(probs) <= 1 + 1e-9


def test_the_last_positions_alone_are_the_same_numbers(llm: Model) -> None:
    tokens = llm.completion_tokens("one two three four five six")
    whole = lens.lens(llm, tokens, top_k_tokens=3)
    tail = lens.lens(llm, tokens, top_k_tokens=3, last_positions=2)
    assert whole.first == 0 and tail.first == len(tokens) - 2
    assert tail.tokens == whole.tokens
    for layer_tail, layer_whole in zip(tail.guesses, whole.guesses, strict=True):
        for part, full in zip(layer_tail, layer_whole[-2:], strict=True):
            assert [g.token for g in part] == [g.token for g in full]
            # The engine's last layer may take another kernel for fewer rows: float noise.
            assert [g.probability for g in part] == pytest.approx(
                [g.probability for g in full], abs=1e-6
            )
    rows = lens_tsv(tail).splitlines()[1:]
    assert {int(r.split("\t")[1]) for r in rows} == {len(tokens) - 2, len(tokens) - 1}


def test_piped_output_is_tsv(model_file: Path) -> None:
    proc = run_cli("lens", "-m", str(model_file), *ONE_THREAD, "-k", "2", "Hello world")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "layer\tposition\ttoken\trank\tid\tprobability\tprediction"
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == 30 * 2 * 2  # layers x tokens x ranks
    assert {r[3] for r in rows} == {"1", "2"}


def test_terminal_table_crops_and_says_so(model_file: Path) -> None:
    env = {"FORCE_COLOR": "1", "COLUMNS": "80"}
    text = " ".join(f"word{i}" for i in range(20))
    proc = run_cli("lens", "-m", str(model_file), *ONE_THREAD, text, env=env)
    assert proc.returncode == 0, proc.stderr
    plain = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout).split())
    assert "Showing the last 6 of" in plain and "real prediction" in plain


def test_top_k_matches_a_full_softmax() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 50)).astype(np.float32) * 4
    logits[1, 7] = logits[1, 9] = 30.0  # a tie: the lower id first
    ids, probs = lens.top_k(logits, 4)
    for row in range(3):
        full = softmax(logits[row])
        assert list(ids[row]) == sorted(range(50), key=lambda i: (-full[i], i))[:4]
        assert np.allclose(probs[row], full[ids[row]], atol=1e-6)
    assert list(ids[1][:2]) == [7, 9]


def test_top_k_over_a_large_vocabulary_is_a_full_sort() -> None:
    # Blocks of lens.BLOCK ids, the last one short, many ties, winners in any block.
    rng = np.random.default_rng(1)
    vocab = 40 * lens.BLOCK + 17
    logits = np.round(rng.normal(size=(6, vocab)) * 2).astype(np.float32)
    logits[1] = 0.0  # every id tied
    logits[2, -1] = 50.0  # the winner in the short last block
    logits[3, [5, 900, 1500]] = 20.0  # tied winners in separate blocks
    ids, probs = lens.top_k(logits, 5)
    for row in range(6):
        full = softmax(logits[row])
        assert list(ids[row]) == sorted(range(vocab), key=lambda i: (-full[i], i))[:5]
        assert np.allclose(probs[row], full[ids[row]], atol=1e-6)
    assert list(ids[3][:3]) == [5, 900, 1500] and ids[2][0] == vocab - 1


def test_read_tensor_dequantizes_what_the_header_lists(model_file: Path) -> None:
    norm = read_tensor(model_file, "output_norm.weight")
    embedding = read_tensor(model_file, "token_embd.weight")  # Q8_0, tied to the output
    assert norm.shape == (576,) and norm.dtype == np.float32
    assert embedding.shape == (49152, 576)
    assert np.isfinite(embedding).all() and 0 < np.abs(embedding).max() < 10
