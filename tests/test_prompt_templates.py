"""Prompt templates: variables, defaults, errors, precedence, and the commands that use them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clihelpers import run_cli

from llmcli import prompt_templates as pt
from llmcli.errors import ConfigError, UsageError

COUNTING = "1, 2, 3, 4, 5,"


def write_template(home: Path, name: str, text: str) -> Path:
    # Tests point LLMCLI_CONFIG at home/config.toml: templates live beside it.
    path = home / "templates" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_every_builtin_parses_and_renders() -> None:
    for name in pt.BUILTIN:
        template = pt.load(name)
        assert template.source == "built-in" and template.description
        system, prompt = template.render("Some text.", {})
        assert "Some text." in prompt
        assert "{{" not in prompt and "{{" not in (system or "")


def test_variables_defaults_and_values() -> None:
    translate = pt.load("translate")
    assert translate.variables == {"lang": "English"}
    assert translate.render("Hallo", {})[1] == "Translate this text into English:\n\nHallo"
    assert translate.render("Hallo", {"lang": "French"})[1].startswith(
        "Translate this text into French"
    )
    # A value is inserted as written, never expanded again.
    assert "{{input}}" in translate.render("x", {"lang": "{{input}}"})[1]


def test_errors_name_what_exists(isolated_home: Path) -> None:
    with pytest.raises(UsageError, match=r"has no variable 'lng'.*lang"):
        pt.load("translate").render("x", {"lng": "French"})
    with pytest.raises(UsageError, match="needs input"):
        pt.load("summarize").render(None, {})
    with pytest.raises(UsageError, match=r"unknown prompt template 'nope'; there are: .*translate"):
        pt.load("nope")
    write_template(isolated_home, "letter", 'prompt = "Dear {{name}}, {{input}}"\n')
    with pytest.raises(UsageError, match="needs --var name=VALUE"):
        pt.load("letter").render("hi", {})
    assert pt.load("letter").render("hi", {"name": "Ann"})[1] == "Dear Ann, hi"
    with pytest.raises(UsageError, match="NAME=VALUE"):
        pt.parse_vars(["lang"])


def test_broken_user_templates_say_where(isolated_home: Path) -> None:
    write_template(isolated_home, "bad", 'prompt = "x"\ncolour = "red"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: unknown key 'colour'"):
        pt.load("bad")
    write_template(isolated_home, "bad", '[options]\ntemperature = "hot"\n')
    with pytest.raises(ConfigError, match="temperature must be a number"):
        pt.load("bad")
    write_template(isolated_home, "bad", "prompt = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        pt.load("bad")


def test_a_template_without_input_slot_gets_the_input_appended(isolated_home: Path) -> None:
    write_template(
        isolated_home,
        "poem",
        'prompt = "Write a poem about {{topic}}."\n[vars]\ntopic = "the sea"\n',
    )
    template = pt.load("poem")
    assert template.render(None, {}) == (None, "Write a poem about the sea.")
    assert template.render("Rhyme it.", {})[1] == "Write a poem about the sea.\n\nRhyme it."


def test_own_template_replaces_the_builtin(isolated_home: Path) -> None:
    write_template(isolated_home, "translate", 'prompt = "Mine: {{input}}"\n')
    assert pt.load("translate").render("x", {})[1] == "Mine: x"
    proc = run_cli("templates", "list", "--json")
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["translate"]["source"] == "yours (replaces built-in)"
    assert rows["summarize"]["source"] == "built-in"


def test_templates_commands(isolated_home: Path) -> None:
    folder = run_cli("templates", "path").stdout.strip()
    assert folder == str(isolated_home / "templates")
    show = run_cli("templates", "show", "translate")
    assert show.returncode == 0 and "{{lang}}" in show.stdout and "built-in" in show.stderr
    edited = run_cli("templates", "edit", "summarize", env={"EDITOR": "true", "VISUAL": ""})
    assert edited.returncode == 0, edited.stderr
    assert (isolated_home / "templates" / "summarize.toml").read_text() == pt.BUILTIN["summarize"]
    fresh = run_cli("templates", "edit", "mine", env={"EDITOR": "true", "VISUAL": ""})
    assert fresh.returncode == 0 and pt.load("mine").prompt == "{{input}}"
    assert run_cli("templates", "show", "nope").returncode == 2


def test_run_uses_system_prompt_and_variables(model_file: Path) -> None:
    proc = run_cli(
        "run", "-m", str(model_file), "-t", "translate", "--var", "lang=French",
        "--show-prompt", input="Good morning",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "<|im_start|>system\nYou are a translator. Reply with the translation only, nothing "
        "else.<|im_end|>\n<|im_start|>user\nTranslate this text into French:\n\nGood morning"
        "<|im_end|>\n<|im_start|>assistant\n"
    )
    own_system = run_cli(
        "run", "-m", str(model_file), "-t", "translate", "-s", "Mine.", "--show-prompt", "Hi"
    )
    assert own_system.stdout.startswith("<|im_start|>system\nMine.<|im_end|>")
    assert run_cli("run", "-m", str(model_file), "--var", "a=b", "Hi").returncode == 2


def test_template_options_sit_between_command_line_and_config(
    model_file: Path, isolated_home: Path
) -> None:
    write_template(isolated_home, "short", 'prompt = "{{input}}"\n[options]\nmax_tokens = 3\n')
    (isolated_home / "config.toml").write_text("max_tokens = 7\ntemperature = 0\n")

    def tokens(*args: str) -> int:
        proc = run_cli("run", "-m", str(model_file), "--raw", "--json", *args, COUNTING)
        assert proc.returncode == 0, proc.stderr
        return int(json.loads(proc.stdout)["usage"]["completion_tokens"])

    assert tokens() == 7  # config
    assert tokens("-t", "short") == 3  # template over config
    assert tokens("-t", "short", "-n", "5") == 5  # command line over template


def test_batch_applies_the_template_to_every_line(model_file: Path) -> None:
    template = ("-t", "translate", "--var", "lang=German")
    args = ("run", "-m", str(model_file), "-n", "2", "--temperature", "0", *template)
    batch = run_cli(*args, "--batch", "-", input="Hello\nGood evening to you all\n")
    assert batch.returncode == 0, batch.stderr
    counts = [json.loads(line)["usage"]["prompt_tokens"] for line in batch.stdout.splitlines()]
    for text, count in zip(("Hello", "Good evening to you all"), counts, strict=True):
        shown = run_cli(*args, "--show-prompt", "--json", text)
        assert json.loads(shown.stdout)["token_count"] == count


def test_chat_puts_each_message_into_the_template(model_file: Path, isolated_home: Path) -> None:
    proc = run_cli(
        "chat", "-m", str(model_file), "-n", "4", "--temperature", "0",
        "-t", "translate", "--var", "lang=French", input="Good night\n",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((isolated_home / "llmcli" / "last_chat.json").read_text())
    assert saved["messages"][0] == {
        "role": "system",
        "content": "You are a translator. Reply with the translation only, nothing else.",
    }
    assert saved["messages"][1] == {
        "role": "user",
        "content": "Translate this text into French:\n\nGood night",
    }
