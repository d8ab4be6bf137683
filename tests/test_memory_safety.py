"""Inputs that once reached the engine as nothing to evaluate: the bindings then wrote
before a buffer's start and damaged the heap, and the process died later, elsewhere."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from clihelpers import run_cli
from test_serve import start_server

from llmcli.errors import ExitCode
from llmcli.tuning.verdicts import crashes_file


@pytest.mark.parametrize(
    "args",
    [("embed", ""), ("similarity", "", "a word"), ("similarity", "a word", "")],
    ids=["embed", "similarity-first", "similarity-second"],
)
def test_an_empty_text_to_embed_is_a_usage_error(model_file: Path, args: tuple[str, ...]) -> None:
    command, *texts = args
    proc = run_cli(command, "-m", str(model_file), *texts)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "llmcli: error: an empty text has no embedding: give at least one word"
    ]
    assert proc.stdout == ""


def test_a_server_asked_for_empty_embeddings_stays_whole(model_file: Path) -> None:
    server = start_server(model_file, "--ctx", "512")
    try:
        for empty in ("", [""], ["a word", ""]):
            status, _, body = server.post("/v1/embeddings", {"input": empty})
            assert status == 400, body
            assert body["error"]["param"] == "input"
        # The same process still embeds and answers, and stops cleanly.
        status, _, body = server.post("/v1/embeddings", {"input": ["king", "queen"]})
        assert status == 200 and len(body["data"]) == 2
        status, _, body = server.post(
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        )
        assert status == 200, body
    finally:
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=60)
    assert code == 0, server.log
    assert not any("crashed" in line for line in server.log), server.log
    assert not crashes_file().exists()
