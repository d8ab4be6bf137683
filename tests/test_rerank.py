"""Reranking: `llmcli rerank` and the server's `/v1/rerank`, with a reranker built from the
test model (tests/rerankfixture.py: real rank pooling, meaningless scores), and the
refusals for a model that is not a reranker and for empty input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clihelpers import run_cli
from rerankfixture import make_reranker
from test_serve import Server, start_server, stop

from llmcli.engine.rerank import Markers, pair_layout

QUERY = "What is the capital of France?"
DOCS = [
    "Paris is the capital and largest city of France.",
    "Bananas are yellow when they are ripe.",
    "The Eiffel Tower stands in Paris.",
    "Rust is a systems programming language.",
]
THREADS = ("--threads", "2")


@pytest.fixture(scope="module")
def reranker(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_reranker(model_file, tmp_path_factory.mktemp("rerank") / "tiny-reranker.gguf")


@pytest.fixture(scope="module")
def server(reranker: Path) -> Iterator[Server]:
    s = start_server(reranker, "--ctx", "512")
    yield s
    assert stop(s) == 0


def test_pair_layout_follows_the_vocabulary_markers() -> None:
    both = Markers(bos=1, eos=2, sep=3)
    assert pair_layout([10, 11], [20], both) == [1, 10, 11, 2, 3, 20, 2]
    assert pair_layout([10], [20], Markers(None, None, None)) == [10, 20]
    assert pair_layout([10], [20], Markers(None, 2, None)) == [10, 2, 20, 2]


def _cli_scores(reranker: Path, *args: str, stdin: str = "") -> dict[str, Any]:
    proc = run_cli("rerank", "-m", str(reranker), *THREADS, "--json", *args, input=stdin)
    assert proc.returncode == 0, proc.stderr
    parsed: dict[str, Any] = json.loads(proc.stdout)
    return parsed


def test_cli_orders_by_score_plain_and_json(reranker: Path) -> None:
    data = _cli_scores(reranker, QUERY, *DOCS)
    assert data["query"] == QUERY
    results = data["results"]
    assert sorted(r["index"] for r in results) == list(range(len(DOCS)))
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all(r["document"]["text"] == DOCS[r["index"]] for r in results)

    plain = run_cli("rerank", "-m", str(reranker), *THREADS, "--top", "2", QUERY, *DOCS)
    assert plain.returncode == 0, plain.stderr
    lines = [line.split("\t") for line in plain.stdout.splitlines()]
    assert [text for _, text in lines] == [DOCS[r["index"]] for r in results[:2]]
    assert [float(s) for s, _ in lines] == pytest.approx(scores[:2], abs=1e-4)

    # Documents from stdin, one a line, with `-`: the same scores for the same pairs.
    piped = _cli_scores(reranker, QUERY, "-", stdin="\n".join(DOCS) + "\n\n")
    assert [r["index"] for r in piped["results"]] == [r["index"] for r in results]
    assert [r["relevance_score"] for r in piped["results"]] == pytest.approx(scores, abs=1e-4)


def test_cli_refuses_a_model_that_is_not_a_reranker(model_file: Path, reranker: Path) -> None:
    proc = run_cli("rerank", "-m", str(model_file), *THREADS, QUERY, *DOCS)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "not a reranker" in proc.stderr

    empty = run_cli("rerank", "-m", str(reranker), *THREADS, "  ", *DOCS)
    assert empty.returncode == 2 and "query is empty" in empty.stderr
    none = run_cli("rerank", "-m", str(reranker), *THREADS, QUERY)
    assert none.returncode == 2 and "no documents" in none.stderr


def test_server_reranks_in_jina_and_cohere_shape(server: Server, reranker: Path) -> None:
    status, _, body = server.post("/v1/rerank", {"query": QUERY, "documents": DOCS})
    assert status == 200, body
    assert body["object"] == "list"
    results = body["results"]
    assert sorted(r["index"] for r in results) == list(range(len(DOCS)))
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all("document" not in r for r in results)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0

    # The command line's engine gives the same scores to the same pairs.
    cli = _cli_scores(reranker, QUERY, *DOCS)["results"]
    assert {r["index"]: r["relevance_score"] for r in cli} == pytest.approx(
        {r["index"]: r["relevance_score"] for r in results}, abs=1e-4
    )

    # /rerank, documents as objects, top_n and return_documents.
    objects = [{"text": d} for d in DOCS]
    status, _, top = server.post(
        "/rerank",
        {
            "model": reranker.name,
            "query": QUERY,
            "documents": objects,
            "top_n": 2,
            "return_documents": True,
        },
    )
    assert status == 200, top
    assert [r["index"] for r in top["results"]] == [r["index"] for r in results[:2]]
    assert [r["document"]["text"] for r in top["results"]] == [
        DOCS[r["index"]] for r in results[:2]
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": "", "documents": DOCS}, "query"),
        ({"query": "  ", "documents": DOCS}, "query"),
        ({"documents": DOCS}, "query"),
        ({"query": QUERY, "documents": []}, "documents"),
        ({"query": QUERY}, "documents"),
        ({"query": QUERY, "documents": ["fine", ""]}, "documents"),
        ({"query": QUERY, "documents": [{"title": "no text"}]}, "documents"),
        ({"query": QUERY, "documents": DOCS, "top_n": 0}, "top_n"),
    ],
)
def test_server_names_the_field_of_a_bad_request(
    server: Server, body: dict[str, Any], param: str
) -> None:
    status, _, answer = server.post("/v1/rerank", body)
    assert status == 400, answer
    assert answer["error"]["param"] == param
    assert answer["error"]["type"] == "invalid_request_error"


def test_a_generative_model_is_refused_and_the_server_goes_on(model_file: Path) -> None:
    s = start_server(model_file, "--ctx", "512")
    try:
        status, _, body = s.post("/v1/rerank", {"query": QUERY, "documents": DOCS})
        assert status == 400
        assert body["error"]["code"] == "model_not_reranker"
        assert body["error"]["param"] == "model"
        assert "not a reranker" in body["error"]["message"]
        # The refusal came before any load: the server still answers.
        status, _, chat = s.post(
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
        )
        assert status == 200 and chat["choices"][0]["message"]["content"] is not None
    finally:
        assert stop(s) == 0
