"""A reasoning model's thinking kept apart from the answer, end to end on the real engine.

The test model has never been taught to think, so a GBNF grammar makes it write the
markers for real: `<think>…</think>` then the answer with a Qwen3 template, harmony
channels with gpt-oss's. For chat (which takes no grammar) the template shows earlier
answers with a thinking block, and the model follows the pattern.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from clihelpers import cli_command, run_cli

QUESTION = "What is the capital of France?"
THINK_GRAMMAR = r"""root ::= "<think>\n" thought "\n</think>\n\n" answer
thought ::= "zebra " [a-z ]{4,30}
answer ::= "Paris" [a-z .]{0,12}
"""
HARMONY_GRAMMAR = r"""root ::= "<|channel|>analysis<|message|>" thought final answer
final ::= "<|end|><|start|>assistant<|channel|>final<|message|>"
thought ::= "zebra " [a-z ]{4,30}
answer ::= "Paris" [a-z .]{0,12}
"""


@pytest.fixture(scope="module")
def qwen3(family_model: Callable[..., Path]) -> Path:
    return family_model("qwen3", weights=True)


@pytest.fixture(scope="module")
def grammars(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("grammars")
    out = {}
    for name, text in (("think", THINK_GRAMMAR), ("harmony", HARMONY_GRAMMAR)):
        out[name] = folder / f"{name}.gbnf"
        out[name].write_text(text)
    return out


def think_run(model: Path, grammar: Path, *args: str, **kw: object) -> object:
    return run_cli(
        "run", "-m", str(model), "--temperature", "0", "--grammar", str(grammar), *args, **kw
    )  # type: ignore[arg-type]


def test_piped_stdout_is_the_answer_alone(qwen3: Path, grammars: dict[str, Path]) -> None:
    proc = think_run(qwen3, grammars["think"], QUESTION)
    assert proc.returncode == 0, proc.stderr  # type: ignore[attr-defined]
    assert proc.stdout.startswith("Paris")  # type: ignore[attr-defined]
    assert "zebra" not in proc.stdout and "think>" not in proc.stdout  # type: ignore[attr-defined]
    assert proc.stderr == ""  # type: ignore[attr-defined]


def test_show_thinking_sends_it_to_stderr(qwen3: Path, grammars: dict[str, Path]) -> None:
    proc = think_run(qwen3, grammars["think"], "--show-thinking", QUESTION)
    assert proc.stdout.startswith("Paris") and "zebra" not in proc.stdout  # type: ignore[attr-defined]
    assert proc.stderr.startswith("zebra")  # type: ignore[attr-defined]
    assert "<think>" not in proc.stderr  # type: ignore[attr-defined]


def test_json_has_reasoning_apart_from_text(qwen3: Path, grammars: dict[str, Path]) -> None:
    proc = think_run(qwen3, grammars["think"], "--json", QUESTION)
    data = json.loads(proc.stdout)  # type: ignore[attr-defined]
    assert data["reasoning"].startswith("zebra ")
    assert data["text"].startswith("Paris") and "zebra" not in data["text"]
    usage = data["usage"]
    assert 0 < usage["reasoning_tokens"] < usage["completion_tokens"]


def test_harmony_channels_split(
    family_model: Callable[..., Path], grammars: dict[str, Path]
) -> None:
    oss = family_model("gpt-oss", weights=True)
    proc = think_run(oss, grammars["harmony"], "--json", QUESTION)
    data = json.loads(proc.stdout)  # type: ignore[attr-defined]
    assert data["reasoning"].startswith("zebra ") and "<|" not in data["reasoning"]
    assert data["text"].startswith("Paris") and "<|" not in data["text"]


def test_thinking_that_uses_up_max_tokens_is_reported(
    qwen3: Path, grammars: dict[str, Path]
) -> None:
    proc = think_run(qwen3, grammars["think"], "-n", "6", "--json", QUESTION)
    data = json.loads(proc.stdout)  # type: ignore[attr-defined]
    assert data["finish_reason"] == "length" and data["text"] == ""
    assert data["usage"]["reasoning_tokens"] == data["usage"]["completion_tokens"] == 6
    assert "thinking used all 6 tokens before the answer began" in proc.stderr  # type: ignore[attr-defined]


def test_batch_lines_carry_reasoning(qwen3: Path, grammars: dict[str, Path]) -> None:
    proc = think_run(qwen3, grammars["think"], "--batch", "-", input=f"{QUESTION}\nAnd Spain?\n")
    lines = [json.loads(line) for line in proc.stdout.splitlines()]  # type: ignore[attr-defined]
    assert [line["index"] for line in lines] == [0, 1]
    for line in lines:
        assert line["reasoning"].startswith("zebra ")
        assert line["text"].startswith("Paris")
        assert line["usage"]["reasoning_tokens"] > 0


def test_terminal_shows_thought_for_then_the_answer(qwen3: Path, grammars: dict[str, Path]) -> None:
    import pexpect

    def on_terminal(*extra: str) -> str:
        argv = cli_command(
            "run", "-m", str(qwen3), "--temperature", "0", "--grammar", str(grammars["think"]),
            *extra, QUESTION,
        )  # fmt: skip
        child = pexpect.spawn(argv[0], argv[1:], env={**os.environ, "COLUMNS": "80"}, timeout=90)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", child.before.decode("utf-8", "replace"))

    folded = on_terminal()
    assert re.search(r"thought for \d+\.\d s", folded), folded
    assert "Paris" in folded and "zebra" not in folded
    assert folded.index("thought for") < folded.index("Paris")
    shown = on_terminal("--show-thinking")
    assert "zebra" in shown and shown.index("zebra") < shown.index("Paris")


# -- chat -------------------------------------------------------------------------------

FEW_SHOT_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if m.role == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n<think>\\nI know this one.\\n</think>\\n\\n' + m.content"
    " + '<|im_end|>\\n' }}"
    "{%- else -%}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n<think>\\n' }}{%- endif -%}"
)


def test_chat_keeps_thinking_out_of_stdout_and_the_conversation(
    qwen3: Path, tmp_path: Path, isolated_home: Path
) -> None:
    template = tmp_path / "think.jinja"
    template.write_text(FEW_SHOT_TEMPLATE)
    earlier = tmp_path / "earlier.json"
    earlier.write_text(
        json.dumps(
            {
                "format": "llmcli-chat",
                "version": 1,
                "messages": [
                    {"role": "user", "content": "What is the capital of France?"},
                    {"role": "assistant", "content": "Paris."},
                    {"role": "user", "content": "What is the capital of Italy?"},
                    {"role": "assistant", "content": "Rome."},
                ],
            }
        )
    )
    proc = run_cli(
        "chat", "-m", str(qwen3), "--template", str(template), "--load", str(earlier),
        "--temperature", "0", "-n", "30", "--show-thinking",
        input="What is the capital of Spain?\n",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "I know this one." in proc.stderr
    assert "I know this one." not in proc.stdout and "think>" not in proc.stdout
    assert proc.stdout.strip()
    saved = json.loads((isolated_home / "llmcli" / "last_chat.json").read_text())
    last = saved["messages"][-1]
    assert last["role"] == "assistant" and last["content"] == proc.stdout.strip()


# -- the switch: config default, command line, /think ------------------------------------


def test_think_from_config_and_command_line(
    family_model: Callable[..., Path], isolated_home: Path
) -> None:
    qwen = str(family_model("qwen3"))
    assert run_cli("config", "set", "think", "off").returncode == 0
    assert "think = false" in (isolated_home / "config.toml").read_text()
    off = run_cli("run", "-m", qwen, "--show-prompt", "Hi")
    assert off.stdout.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n"), off.stdout
    on = run_cli("run", "-m", qwen, "--think", "--show-prompt", "Hi")
    assert on.stdout.endswith("<|im_start|>assistant\n")
    bad = run_cli("config", "set", "reasoning_effort", "extreme")
    assert bad.returncode == 2 and "low, medium, high" in bad.stderr
    oss = str(family_model("gpt-oss"))
    high = run_cli("run", "-m", oss, "--reasoning-effort", "high", "--show-prompt", "Hi")
    assert "\nReasoning: high\n" in high.stdout
    ignored = run_cli("run", "-m", qwen, "--reasoning-effort", "high", "--show-prompt", "Hi")
    assert "no thinking levels" in ignored.stderr


def test_think_command_in_chat() -> None:
    from llmcli.chat.commands import dispatch
    from llmcli.chat.conversation import Conversation
    from llmcli.engine.reasoning import Thinking

    conv = Conversation()
    assert dispatch(conv, "/think").info == "thinking: the model's default"  # type: ignore[union-attr]
    dispatch(conv, "/think off")
    assert conv.thinking == Thinking(enabled=False)
    dispatch(conv, "/think high")
    assert conv.thinking == Thinking(enabled=True, effort="high")
    dispatch(conv, "/think default")
    assert conv.thinking == Thinking()
    assert dispatch(conv, "/think loudly").error  # type: ignore[union-attr]
