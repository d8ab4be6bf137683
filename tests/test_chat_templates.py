"""Every family's chat template renders as its own reference does.

The fixtures are the test model with each family's real template (tests/chat_templates,
sources in SOURCES.md). Two references:

- `reference()`: the template rendered with plain jinja2 the way Hugging Face
  transformers' `apply_chat_template` does (a sandboxed environment with trim_blocks and
  lstrip_blocks, loop controls, `raise_exception`, `strftime_now`, `tojson` without ASCII
  escaping, `bos_token`/`eos_token`, `tools=None`, `add_generation_prompt=True`). The
  model's own BOS/EOS texts stand in for the family's (the vocabulary is SmolLM2's).
- literal strings written from each family's documented prompt format, and for Phi-4
  llama.cpp's own expectation (tests/test-chat-template.cpp).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import pytest
from clihelpers import run_cli
from ggufedit import with_metadata
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmcli.engine.chat_prompt import merge_system
from llmcli.engine.model import Model
from llmcli.engine.reasoning import Thinking
from llmcli.engine.types import LoadOptions, Message

TEMPLATES = Path(__file__).parent / "chat_templates"
BOS, EOS = "<|im_start|>", "<|im_end|>"  # the test model's BOS and EOS token texts
FAMILIES = (
    "qwen3",
    "deepseek-r1-distill",
    "gpt-oss",
    "gemma3",
    "gemma2",
    "llama3.2",
    "phi4",
    "mistral-small-3.2",
    "mistral-nemo",
    "smollm3",
)
# llama.cpp's standard conversation (tests/test-chat-template.cpp).
CONVERSATION = [
    Message(role="system", content="You are a helpful assistant"),
    Message(role="user", content="Hello"),
    Message(role="assistant", content="Hi there"),
    Message(role="user", content="Who are you"),
    Message(role="assistant", content="   I am an assistant   "),
    Message(role="user", content="Another question"),
]
NO_SYSTEM_ROLE = {"gemma2"}


def reference(family: str, messages: Sequence[Message], **kwargs: Any) -> str:
    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = lambda x, indent=None, **_: json.dumps(
        x, ensure_ascii=False, indent=indent
    )
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: time.strftime(fmt)
    template = env.from_string((TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8"))
    return template.render(
        messages=[dict(m) for m in messages],
        bos_token=BOS,
        eos_token=EOS,
        add_generation_prompt=True,
        tools=None,
        **kwargs,
    )


def expected(family: str, messages: Sequence[Message], **kwargs: Any) -> str:
    """The reference; for families whose template refuses a system role, the documented
    workaround: the system prompt opens the first user message."""
    if family in NO_SYSTEM_ROLE:
        return reference(family, merge_system(messages), **kwargs)
    return reference(family, messages, **kwargs)


@pytest.fixture(scope="module")
def loaded(family_model: Callable[..., Path]) -> Callable[..., Model]:
    models: dict[str, Model] = {}

    def load(family: str) -> Model:
        if family not in models:
            models[family] = Model(LoadOptions(family_model(family), vocab_only=True))
        return models[family]

    yield load  # type: ignore[misc]
    for m in models.values():
        m.close()


def rendered(llm: Model, messages: Sequence[Message], thinking: Thinking | None = None) -> str:
    return llm.prompt_text(llm.chat_tokens(messages, thinking=thinking))


# Templates that read `enable_thinking` get it even by default (True: think); the
# reference renders them with the same value.
DEFAULT_KWARGS = {
    "qwen3": {"enable_thinking": True},
    "deepseek-r1-distill": {"enable_thinking": True},
    "smollm3": {"enable_thinking": True},
}


@pytest.mark.parametrize("family", FAMILIES)
def test_multi_turn_conversation_renders_as_the_reference(
    loaded: Callable[[str], Model], family: str
) -> None:
    llm = loaded(family)
    assert llm.prompt_text(llm.tokenize(BOS + EOS, add_bos=False, special=True)) == BOS + EOS
    assert rendered(llm, CONVERSATION) == expected(
        family, CONVERSATION, **DEFAULT_KWARGS.get(family, {})
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_show_prompt_prints_the_exact_prompt_without_weights(
    family_model: Callable[..., Path], family: str
) -> None:
    path = family_model(family)  # a sparse file: it has no weights to load
    proc = run_cli("run", "-m", str(path), "--show-prompt", "-s", "Be brief.", "Hello")
    assert proc.returncode == 0, proc.stderr
    messages = [Message(role="system", content="Be brief."), Message(role="user", content="Hello")]
    assert proc.stdout == expected(family, messages, **DEFAULT_KWARGS.get(family, {}))
    assert proc.stderr.strip().endswith(" tokens")


def test_phi4_matches_llama_cpp_expectation(loaded: Callable[[str], Model]) -> None:
    assert rendered(loaded("phi4"), CONVERSATION) == (
        "<|im_start|>system<|im_sep|>You are a helpful assistant<|im_end|>"
        "<|im_start|>user<|im_sep|>Hello<|im_end|><|im_start|>assistant<|im_sep|>Hi there"
        "<|im_end|><|im_start|>user<|im_sep|>Who are you<|im_end|>"
        "<|im_start|>assistant<|im_sep|>   I am an assistant   <|im_end|>"
        "<|im_start|>user<|im_sep|>Another question<|im_end|><|im_start|>assistant<|im_sep|>"
    )


def test_gemma3_folds_the_system_prompt_into_the_first_turn(
    loaded: Callable[[str], Model],
) -> None:
    assert rendered(loaded("gemma3"), CONVERSATION) == (
        f"{BOS}<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n"
        "<start_of_turn>model\nHi there<end_of_turn>\n"
        "<start_of_turn>user\nWho are you<end_of_turn>\n"
        "<start_of_turn>model\nI am an assistant<end_of_turn>\n"
        "<start_of_turn>user\nAnother question<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma2_has_no_system_role_so_it_opens_the_first_user_turn(
    loaded: Callable[[str], Model],
) -> None:
    text = rendered(loaded("gemma2"), CONVERSATION)
    assert text.startswith(
        f"{BOS}<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n"
    )
    assert text.endswith(
        "<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n"
    )


def test_mistral_nemo_puts_the_system_prompt_in_the_last_user_turn(
    loaded: Callable[[str], Model],
) -> None:
    # Mistral's v3-tekken layout (llama.cpp's expected_output_jinja for this template).
    assert rendered(loaded("mistral-nemo"), CONVERSATION) == (
        f"{BOS}[INST]Hello[/INST]Hi there{EOS}[INST]Who are you[/INST]   I am an assistant   "
        f"{EOS}[INST]You are a helpful assistant\n\nAnother question[/INST]"
    )


def test_llama32_dates_the_prompt_with_strftime_now(loaded: Callable[[str], Model]) -> None:
    text = rendered(loaded("llama3.2"), CONVERSATION[:2])
    assert f"Today Date: {time.strftime('%d %b %Y')}\n" in text
    assert text.startswith(f"{BOS}<|start_header_id|>system<|end_header_id|>\n\n")
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_thinking_switches_reach_each_template(loaded: Callable[[str], Model]) -> None:
    user = [Message(role="user", content="Hi")]
    off, on = Thinking(enabled=False), Thinking(enabled=True)
    assert rendered(loaded("qwen3"), user, off).endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert rendered(loaded("qwen3"), user, on).endswith("<|im_start|>assistant\n")
    # The distill opens the thinking block itself: the answer starts inside it.
    assert rendered(loaded("deepseek-r1-distill"), user, on).endswith("<｜Assistant｜><think>\n")
    assert rendered(loaded("deepseek-r1-distill"), user, off).endswith("<think>\n</think>")
    assert "Reasoning Mode: /no_think" in rendered(loaded("smollm3"), user, off)
    assert "Reasoning Mode: /think" in rendered(loaded("smollm3"), user)
    oss = loaded("gpt-oss")
    assert "\nReasoning: medium\n" in rendered(oss, user)
    assert "\nReasoning: high\n" in rendered(oss, user, Thinking(effort="high"))
    assert "\nReasoning: low\n" in rendered(oss, user, off)
    assert rendered(oss, user).endswith("<|start|>user<|message|>Hi<|end|><|start|>assistant")


def test_reasoning_formats_are_recognised(loaded: Callable[[str], Model]) -> None:
    styles = {f: (loaded(f).reasoning.style if loaded(f).reasoning else None) for f in FAMILIES}
    assert styles == {
        "qwen3": "tags",
        "deepseek-r1-distill": "tags",
        "gpt-oss": "harmony",
        "gemma3": None,
        "gemma2": None,
        "llama3.2": None,
        "phi4": None,
        "mistral-small-3.2": None,
        "mistral-nemo": None,
        "smollm3": "tags",
    }
    distill = loaded("deepseek-r1-distill")
    prompt = distill.chat_tokens([Message(role="user", content="Hi")])
    splitter = distill.splitter(prompt)
    assert splitter is not None and splitter.thinking


# -- BOS as llama.cpp handles it ---------------------------------------------------------


def test_bos_is_added_once_where_the_vocabulary_wants_it(
    family_model: Callable[..., Path],
) -> None:
    for family, writes_bos in (("llama3.2", True), ("qwen3", False)):
        with Model(LoadOptions(family_model(family, add_bos=True), vocab_only=True)) as llm:
            tokens = llm.chat_tokens([Message(role="user", content="Hi")])
            bos = llm.llama.token_bos()
            assert tokens[0] == bos, family
            assert tokens[1] != bos, family
            assert llm.prompt_text(tokens).startswith(BOS)
            assert writes_bos == ("bos_token" in (TEMPLATES / f"{family}.jinja").read_text())
    with Model(LoadOptions(family_model("llama3.2"), vocab_only=True)) as llm:
        # The vocabulary adds no BOS: only the template's own.
        tokens = llm.chat_tokens([Message(role="user", content="Hi")])
        assert tokens.count(llm.llama.token_bos()) == 1


# -- templates that fail, and --template -------------------------------------------------


def one_line_error(proc: Any, *words: str) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmcli: error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return str(lines[0])


def test_a_failing_template_is_one_line_naming_the_model(model_file: Path, tmp_path: Path) -> None:
    broken = with_metadata(
        model_file,
        tmp_path / "broken-template.gguf",
        strings={"tokenizer.chat_template": "{% if messages %}{{ messages[0].content "},
        weights=False,
    )
    proc = run_cli("run", "-m", str(broken), "--show-prompt", "Hi")
    one_line_error(proc, "broken-template.gguf", "--raw", "--template FILE")
    raising = tmp_path / "raising.jinja"
    raising.write_text("{{ raise_exception('this template wants tools') }}")
    proc = run_cli("run", "-m", str(model_file), "--template", str(raising), "--show-prompt", "Hi")
    one_line_error(proc, "--template", "this template wants tools")


def test_template_file_overrides_the_models(model_file: Path, tmp_path: Path) -> None:
    own = tmp_path / "own.jinja"
    own.write_text("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}>>> ")
    proc = run_cli(
        "run", "-m", str(model_file), "--template", str(own), "--show-prompt", "-s", "S", "Hi"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[system] S\n[user] Hi\n>>> "
    missing = run_cli("run", "-m", str(model_file), "--template", str(tmp_path / "no"), "Hi")
    assert missing.returncode == 2 and "cannot read chat template" in missing.stderr


def test_show_prompt_json_has_the_tokens(model_file: Path) -> None:
    proc = run_cli("run", "-m", str(model_file), "--show-prompt", "--json", "Hi")
    data = json.loads(proc.stdout)
    assert data["token_count"] == len(data["tokens"]) > 3
    assert data["prompt"].endswith("<|im_start|>assistant\n")
