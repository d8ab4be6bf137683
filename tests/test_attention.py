"""Attention maps from the real engine: what they hold, checked against an independent
recomputation from the same forward pass, and the `attention` command's outputs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clihelpers import run_cli

from llmcli.engine import attention, capture
from llmcli.engine.model import Model
from llmcli.engine.types import LoadOptions
from llmcli.ui import attention_view as view

ONE_THREAD = ("--threads", "1")
TEXT = (
    "The old lighthouse keeper climbed the stairs every night, lit the lamp, and "
    "watched the ships pass safely through the narrow strait."
)
LAYER = 7


@pytest.fixture(scope="module")
def llm(model_file: Path) -> Iterator[Model]:
    with Model(LoadOptions(model_file, n_ctx=256, n_threads=1)) as model:
        yield model


@pytest.fixture(scope="module")
def tokens(llm: Model) -> list[int]:
    return llm.completion_tokens(TEXT)


@pytest.fixture(scope="module")
def maps(llm: Model, tokens: list[int]) -> attention.AttentionMaps:
    return attention.attention(llm, tokens, layer=LAYER)


def test_rows_are_distributions_over_the_past(
    maps: attention.AttentionMaps, tokens: list[int]
) -> None:
    n = len(tokens)
    assert n > 20
    assert maps.weights.shape == (maps.shape.heads, n, n)
    future = np.triu(np.ones((n, n), dtype=bool), k=1)
    for head in maps.weights:
        assert np.all(head[future] == 0.0)  # masked: exactly zero, not merely small
        sums = np.where(future, 0.0, head).sum(axis=1)
        assert np.allclose(sums, 1.0, atol=1e-3)
        assert np.all(head >= 0.0)


class _Recorder:
    """Every arrival of the attention inputs and outputs of one layer, in order."""

    def __init__(self, layer: int) -> None:
        self.names = {f"Qcur-{layer}", f"Kcur-{layer}", f"kq_soft_max-{layer}"}
        self.arrivals: list[tuple[str, np.ndarray]] = []

    def wants(self, name: str) -> bool:
        return name in self.names

    def take(self, name: str, data: np.ndarray) -> None:
        self.arrivals.append((name, data))


def test_weights_equal_softmax_of_the_same_pass_queries_and_keys(
    llm: Model, tokens: list[int]
) -> None:
    recorder = _Recorder(LAYER)
    seen = capture.forward(llm, tokens, recorder)
    assert {f"Qcur-{LAYER}", f"Kcur-{LAYER}", f"kq_soft_max-{LAYER}"} <= seen
    # Qcur/Kcur arrive several times per micro-batch (projection, reshape, RoPE); the
    # keys and queries attention uses are the last of each before the softmax.
    queries, keys, softmax = [], [], []
    last: dict[str, np.ndarray] = {}
    for name, data in recorder.arrivals:
        if name.startswith("kq_soft_max"):
            queries.append(last[f"Qcur-{LAYER}"])
            keys.append(last[f"Kcur-{LAYER}"])
            softmax.append(data)
        else:
            last[name] = data
    n = len(tokens)
    q = np.concatenate([a.reshape(a.shape[-3:]) for a in queries])  # tokens, heads, dim
    k = np.concatenate([a.reshape(a.shape[-3:]) for a in keys])  # tokens, kv heads, dim
    engine = np.concatenate([a.reshape(a.shape[-3:])[:, :, :n] for a in softmax], axis=1)
    heads, kv_heads, dim = q.shape[1], k.shape[1], q.shape[2]
    assert (q.shape[0], k.shape[0]) == (n, n)
    assert (heads, kv_heads) == (9, 3)  # grouped-query attention: 3 query heads per key head
    mask = np.triu(np.full((n, n), -np.inf), k=1)
    for h in range(heads):
        kv = h // (heads // kv_heads)
        scores = q[:, h, :].astype(np.float64) @ k[:, kv, :].T.astype(np.float64)
        scores = scores / np.sqrt(dim) + mask
        expected = np.exp(scores - scores.max(axis=1, keepdims=True))
        expected /= expected.sum(axis=1, keepdims=True)
        # The engine keeps keys in float16 in its cache: agreement to about 1e-3.
        assert np.abs(engine[h] - expected).max() < 5e-3, h


def test_previous_token_heads_peak_below_the_diagonal(llm: Model, tokens: list[int]) -> None:
    overview = attention.attention(llm, tokens, layer=0).overview
    previous = [s for s in overview if s.kind == "previous"]
    assert previous, "this model has previous-token heads (layers 1, 2, 11, 16)"
    best = max(previous, key=lambda s: s.previous)
    weights = attention.attention(llm, tokens, layer=best.layer).head(best.head)
    rows = range(2, len(tokens))
    peaks = [int(np.argmax(weights[i])) for i in rows]
    on_diagonal_below = sum(p == i - 1 for p, i in zip(peaks, rows, strict=True))
    assert on_diagonal_below >= 0.8 * len(rows)
    assert np.mean([weights[i, i - 1] for i in rows]) == pytest.approx(best.previous, abs=1e-4)


def test_bad_layer_and_head_are_usage_errors(llm: Model) -> None:
    from llmcli.errors import UsageError

    shape = attention.model_shape(llm)
    assert attention.check_choice(shape, None, None) == shape.layers // 2
    with pytest.raises(UsageError, match="layers 0 to 29"):
        attention.check_choice(shape, 30, None)
    with pytest.raises(UsageError, match="heads 0 to 8"):
        attention.check_choice(shape, 0, 9)


# -- the command ---------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return run_cli("attention", *ONE_THREAD, *args, env=env)


def test_piped_output_is_tsv(model_file: Path) -> None:
    proc = cli("-m", str(model_file), "--layer", "2", "--head", "1", "one two three four")
    assert proc.returncode == 0, proc.stderr
    lines = [line.split("\t") for line in proc.stdout.splitlines()]
    header, rows = lines[0], lines[1:]
    assert header[:3] == ["head", "position", "token"]
    n = len(header) - 3
    assert len(rows) == n and all(row[0] == "1" for row in rows)
    for i, row in enumerate(rows):
        values = [float(v) for v in row[3:]]
        assert sum(values) == pytest.approx(1.0, abs=1e-3)
        assert all(v == 0.0 for v in values[i + 1 :])
    assert not re.search(r"\x1b\[", proc.stdout)


def test_json_has_tokens_maps_and_overview(model_file: Path) -> None:
    proc = cli("-m", str(model_file), "--json", "--heads", "all", "Hello there, world")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    n = len(data["tokens"])
    assert data["layer"] == 15 and data["layers"] == 30
    assert [m["head"] for m in data["maps"]] == list(range(9))
    assert all(len(m["weights"]) == n and len(m["weights"][0]) == n for m in data["maps"])
    assert len(data["overview"]) == 30 * 9
    assert {"layer", "head", "previous", "first", "self", "kind"} <= set(data["overview"][0])
    mean = json.loads(cli("-m", str(model_file), "--json", "Hello there, world").stdout)
    assert [m["head"] for m in mean["maps"]] == ["mean"]
    expected = np.mean([m["weights"] for m in data["maps"]], axis=0)
    assert np.allclose(mean["maps"][0]["weights"], expected, atol=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--layer", "30"), "no layer 30: this model has layers 0 to 29"),
        (("--head", "9"), "no head 9: this model has heads 0 to 8"),
        (("--head", "1", "--heads", "all"), "--head or --heads"),
        (("--heads", "some"), "--heads"),
        (("--save", "map.pdf"), ".png"),
    ],
)
def test_bad_choices_are_one_line_usage_errors(
    model_file: Path, args: tuple[str, ...], message: str
) -> None:
    proc = cli("-m", str(model_file), *args, "a few words")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stdout == ""


def test_save_names_the_extra_or_writes_the_image(model_file: Path, tmp_path: Path) -> None:
    target = tmp_path / "map.svg"
    proc = cli("-m", str(model_file), "--save", str(target), "a few words")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert proc.returncode == 2
        assert "llmcli[plot]" in proc.stderr and "matplotlib" in proc.stderr
        assert not target.exists()
    else:
        assert proc.returncode == 0, proc.stderr
        assert target.read_text().lstrip().startswith("<?xml")


def test_terminal_heat_map_crops_long_texts_and_says_so(model_file: Path) -> None:
    text = " ".join(f"word{i}" for i in range(30))  # well over 40 tokens
    env = {"FORCE_COLOR": "1", "COLUMNS": "80"}
    proc = cli("-m", str(model_file), "--layer", "1", text, env=env)
    assert proc.returncode == 0, proc.stderr
    plain = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
    shown = view.visible_tokens(1000, 80)
    assert f"Showing the last {shown} of" in " ".join(plain.split())  # the note may wrap
    assert "What each head looks at" in plain and "◀ shown" in plain
    assert "previous-token heads" in plain
    assert max(len(line) for line in plain.splitlines()) <= 80


def test_view_helpers() -> None:
    from llmcli.engine.vocab import Token

    assert view.label(Token(1, b" fox", " fox")) == "␣fox"
    assert view.label(Token(2, b"a\nb", "a\nb")) == "a\\nb"
    assert view.visible_tokens(10, 200) == 10
    assert view.visible_tokens(100, 80) == (80 - view.LABEL_WIDTH - 1) // 2
