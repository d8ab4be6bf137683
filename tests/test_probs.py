"""`llmcli run --probs`: each answer token's probability, from the real model."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from clihelpers import cli_json, run_cli

from llmcli.engine.logprobs import Alternative, TokenLogprob, log_softmax, token_logprob
from llmcli.ui import probs_view

ONE_THREAD = ("--threads", "1")
PROMPT = "The capital of France is"


def test_logprobs_equal_next_at_each_greedy_step(model_file: Path) -> None:
    steps = 6
    base = ("-m", str(model_file), *ONE_THREAD, "--json", "--raw", PROMPT)
    nxt = cli_json("next", *base, "--steps", str(steps), "-k", "5")
    run = cli_json(
        "run", *base, "--temperature", "0", "-n", str(steps), "--probs", "--no-prompt-cache"
    )
    content = run["logprobs"]["content"]
    assert len(content) == run["usage"]["completion_tokens"] == steps
    for entry, step in zip(content, nxt["steps"], strict=True):
        candidates = step["candidates"]
        assert entry["token"] == candidates[0]["text"]
        assert entry["bytes"] == candidates[0]["bytes"]
        assert math.exp(entry["logprob"]) == pytest.approx(candidates[0]["probability"], abs=1e-5)
        tops = entry["top_logprobs"]
        assert [t["token"] for t in tops] == [c["text"] for c in candidates]
        for top, c in zip(tops, candidates, strict=True):
            assert math.exp(top["logprob"]) == pytest.approx(c["probability"], abs=1e-5)
    assert bytes(b for e in content for b in e["bytes"]).decode() == run["text"]


def test_sampling_is_unchanged(model_file: Path) -> None:
    args = ("run", "-m", str(model_file), *ONE_THREAD, "--json", "-n", "12", "--seed", "7")
    plain = cli_json(*args, "--temperature", "0.9", "Tell me about cats.")
    probs = cli_json(*args, "--temperature", "0.9", "--probs", "Tell me about cats.")
    assert probs["text"] == plain["text"]
    assert "logprobs" not in plain
    assert all(e["logprob"] <= 0 for e in probs["logprobs"]["content"])
    assert all(len(e["top_logprobs"]) == 5 for e in probs["logprobs"]["content"])


def test_terminal_shades_tokens_and_explains(model_file: Path) -> None:
    env = {"FORCE_COLOR": "1", "COLUMNS": "100"}
    args = ("run", "-m", str(model_file), *ONE_THREAD, "-n", "8", "--temperature", "0")
    proc = run_cli(*args, "--probs", "Say hello.", env=env)
    assert proc.returncode == 0, proc.stderr
    plain = cli_json(*args, "--json", "Say hello.")["text"]
    assert re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout).strip() == plain.strip()
    assert "token probability" in proc.stderr


def test_probs_is_for_one_prompt(model_file: Path) -> None:
    proc = run_cli("run", "-m", str(model_file), "--probs", "--batch", "-", input="a\nb\n")
    assert proc.returncode == 2 and "--batch" in proc.stderr


# -- pure helpers --------------------------------------------------------------------------


def test_token_logprob_and_top_alternatives() -> None:
    import numpy as np

    logits = np.array([2.0, 0.0, 2.0, -1.0], dtype=np.float32)
    entry = token_logprob(logits, 1, 2, "x", lambda i: bytes([65 + i]))
    probs = np.exp(log_softmax(logits))
    assert math.isclose(float(probs.sum()), 1.0)
    assert entry.probability == pytest.approx(float(probs[1]))
    assert [a.id for a in entry.top] == [0, 2]  # ties go to the lower id
    assert entry.as_json()["token"] == "B" and entry.as_json()["bytes"] == [66]


def test_writer_shades_by_token_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    def entry(text: str, logprob: float) -> TokenLogprob:
        return TokenLogprob(Alternative(0, text.encode(), logprob), (), text)

    entries = [entry("Hel", 0.0), entry("lo", math.log(0.3)), entry("", 0.0), entry("!", -5.0)]
    writer = probs_view.ProbsWriter(entries)
    plain, spans = "", []
    for chunk in ("He", "llo!", "\ufffd"):  # chunks need not follow token boundaries
        styled = writer._styled(chunk)
        plain += styled.plain
        spans += [(styled.plain[s.start : s.end], str(s.style)) for s in styled.spans]
    assert plain == "Hello!\ufffd"
    # Likely tokens stay plain; "lo" and "!" are shaded by their own probabilities.
    assert spans == [
        ("lo", probs_view.style_for(0.3)),
        ("!", probs_view.style_for(math.exp(-5.0))),
    ]
    assert probs_view.style_for(0.95) == "" and probs_view.style_for(0.01) == "white on red"
