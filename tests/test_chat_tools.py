"""`llmcli chat` with tools: calls made in a chat, /tools, and the chat file keeping the
calls and their results so that a resumed chat shows them to the model. The real model
with Qwen3's chat template (its tokens are the test model's)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from clihelpers import run_cli

from llmcli.chat import chat_file
from llmcli.engine.model import Model
from llmcli.engine.types import LoadOptions

PY_TOOLS = Path(__file__).parent / "tool_fixtures" / "python_tools.py"


@pytest.fixture(autouse=True)
def pinned_engine_setup(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No setup probe (slow on a busy machine) for the fixture model's copy."""
    monkeypatch.setenv("LLMCLI_ENGINE_SETUP", "no-repack")


def chat(model: Path, *args: str, text: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "chat",
        "-m",
        str(model),
        "--temperature",
        "0",
        "-n",
        "64",
        "--no-log",
        "--tool-file",
        str(PY_TOOLS),
        *args,
        input=text,
        timeout=400,
    )


def test_a_chat_calls_tools_lists_them_and_keeps_calls_for_a_resumed_chat(
    family_model: Callable[..., Path],
) -> None:
    model = family_model("qwen3", weights=True)
    proc = chat(
        model,
        "--tool-choice",
        "get_weather",
        "--max-steps",
        "1",
        "--yes",
        text="What is the weather in Paris?\n/tools\n",
    )
    assert proc.returncode == 0, proc.stderr
    stderr = proc.stderr
    assert "tool call: get_weather" in stderr
    # /tools: one line per tool, with where it comes from.
    assert f"get_weather: The weather in a city now. [{PY_TOOLS}]" in stderr
    assert "tool call" not in proc.stdout

    saved = json.loads(chat_file.last_chat_path().read_text(encoding="utf-8"))
    roles = [m["role"] for m in saved["messages"]]
    assert roles[:3] == ["user", "assistant", "tool"] and roles[-1] == "assistant"
    [call] = saved["messages"][1]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    arguments = call["function"]["arguments"]
    result = saved["messages"][2]
    assert result["tool_call_id"] == call["id"]
    assert result["content"] == f"Sunny and 21 degrees {arguments['unit']} in {arguments['city']}"

    # What a resumed chat renders for the model holds the call and its result.
    conv = chat_file.load(chat_file.last_chat_path())
    weights = family_model("qwen3")
    with Model(LoadOptions(path=weights, vocab_only=True)) as llm:
        prompt = llm.prompt_text(llm.chat_tokens(conv.messages()))
    assert "<tool_call>" in prompt and '"get_weather"' in prompt
    assert f"<tool_response>\n{result['content']}\n</tool_response>" in prompt


def test_a_piped_chat_without_yes_refuses_the_call_and_exits_13(
    family_model: Callable[..., Path], tmp_path: Path
) -> None:
    model = family_model("qwen3", weights=True)
    proc = chat(model, "--tool-choice", "get_weather", text="Weather in Paris?\n")
    assert proc.returncode == 15
    errors = [line for line in proc.stderr.splitlines() if line.startswith("llmcli: error:")]
    assert len(errors) == 1 and "no terminal to ask" in errors[0]


def test_tools_without_tools_says_how_to_get_some(model_file: Path) -> None:
    proc = run_cli("chat", "-m", str(model_file), "--no-log", input="/tools\n", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "no tools: start the chat with --tool-file" in proc.stderr
