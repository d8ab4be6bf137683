"""The config file: precedence, per-model options, user aliases, errors, `config set`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from clihelpers import run_cli
from typer._click.globals import get_current_context

from llmcli import config
from llmcli.cli import app
from llmcli.commands import _invocation
from llmcli.config import edit as config_edit
from llmcli.errors import ConfigError
from llmcli.model_refs import HubRef, LocalRef
from llmcli.resolve import resolver

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class _Captured(Exception):
    """Stops `llmcli run` right after its options are parsed, before any model loads."""


def _effective(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> dict[str, Any]:
    """What `llmcli run ARGV` would use: its parsed options and the model it resolves."""

    def capture(**_kwargs: Any) -> None:
        raise _Captured(dict(get_current_context().params))

    monkeypatch.setattr(_invocation, "sampling", capture)
    with pytest.raises(_Captured) as caught:
        app(args=["run", *argv, "hi"], prog_name="llmcli", standalone_mode=False)
    params: dict[str, Any] = caught.value.args[0]
    params["model"] = params["model"] or resolver.default_ref()
    return params


def _write_config(text: str) -> Path:
    path = Path(os.environ["LLMCLI_CONFIG"])
    path.write_text(text, encoding="utf-8")
    return path


FULL = """\
model = "qwen2.5:3b"
temperature = 0.3
ctx = 8192

[models."smollm2:135m"]
temperature = 0
top_k = 5
"""

# (config file, LLMCLI_MODEL, command line, expected model, temperature, ctx, top_k)
PRECEDENCE = [
    pytest.param("", None, [], "qwen2.5:1.5b", 0.8, 4096, 40, id="built-in"),
    pytest.param(FULL, None, [], "qwen2.5:3b", 0.3, 8192, 40, id="config"),
    pytest.param(FULL, "llama3.2:1b", [], "llama3.2:1b", 0.3, 8192, 40, id="env>config"),
    pytest.param(FULL, "llama3.2:1b", ["-m", "gemma3"], "gemma3", 0.3, 8192, 40, id="flag>env"),
    pytest.param(FULL, None, ["--temperature", "0.9"], "qwen2.5:3b", 0.9, 8192, 40, id="flag"),
    pytest.param(FULL, None, ["-c", "512"], "qwen2.5:3b", 0.3, 512, 40, id="flag-ctx"),
    pytest.param(FULL, None, ["-m", "smollm2:135m"], "smollm2:135m", 0.0, 8192, 5, id="per-model"),
    pytest.param(
        FULL,
        None,
        ["-m", "hf.co/bartowski/SmolLM2-135M-Instruct-GGUF:q4_k_m"],
        "hf.co/bartowski/SmolLM2-135M-Instruct-GGUF:q4_k_m",
        0.0,
        8192,
        5,
        id="per-model-other-spelling",
    ),
    pytest.param(
        FULL,
        None,
        ["--temperature", "0.5", "-m", "smollm2"],
        "smollm2",
        0.5,
        8192,
        5,
        id="flag>per-model",
    ),
    pytest.param(
        FULL, "smollm2:135m", [], "smollm2:135m", 0.0, 8192, 5, id="per-model-of-env-model"
    ),
    pytest.param(
        FULL + '\n[aliases]\nmine = "bartowski/SmolLM2-135M-Instruct-GGUF"\n'
        "[models.mine]\ntop_k = 7\n",
        None,
        ["-m", "mine"],
        "mine",
        0.3,
        8192,
        7,
        id="user-alias-per-model",
    ),
]


@pytest.mark.parametrize(
    ("config_text", "env_model", "argv", "model", "temperature", "ctx", "top_k"), PRECEDENCE
)
def test_precedence(
    monkeypatch: pytest.MonkeyPatch,
    config_text: str,
    env_model: str | None,
    argv: list[str],
    model: str,
    temperature: float,
    ctx: int,
    top_k: int,
) -> None:
    _write_config(config_text)
    if env_model is not None:
        monkeypatch.setenv("LLMCLI_MODEL", env_model)
    got = _effective(monkeypatch, argv)
    assert (got["model"], got["temperature"], got["ctx"], got["top_k"]) == (
        model,
        temperature,
        ctx,
        top_k,
    )


def test_user_alias_resolves_before_builtins_but_not_before_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_config('[aliases]\nsmollm2 = "owner/repo:Q5_K_M"\nwork = "other/repo"\n')
    assert resolver.parse("smollm2") == HubRef("owner/repo", quant="Q5_K_M")
    assert resolver.parse("WORK") == HubRef("other/repo")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").write_bytes(b"GGUF")
    assert resolver.parse("work") == LocalRef("work")


def test_config_path_follows_xdg_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMCLI_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/x/conf")
    monkeypatch.setattr(config.sys, "platform", "linux")
    assert config.config_path() == Path("/x/conf/llmcli/config.toml")
    monkeypatch.setenv("LLMCLI_CONFIG", "/elsewhere/c.toml")
    assert config.config_path() == Path("/elsewhere/c.toml")


def test_broken_file_names_file_and_line() -> None:
    path = _write_config('model = "qwen2.5:3b"\n\ntemperature = = 1\n')
    proc = run_cli("list")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"llmcli: error: {path}:3:")
    assert "Traceback" not in proc.stderr


def test_wrong_type_is_an_error_naming_the_key() -> None:
    path = _write_config('temperature = "hot"\n')
    proc = run_cli("list")
    assert proc.returncode == 2
    assert f"{path}: temperature: temperature must be a number" in proc.stderr


def test_unknown_keys_only_warn() -> None:
    _write_config("colour = true\n[models.smollm2]\nwarmth = 1\n")
    proc = run_cli("list", "--json")
    assert proc.returncode == 0, proc.stderr
    # Nothing cached: only the starter model the test extra installs.
    assert [row["name"] for row in json.loads(proc.stdout)] == ["starter"]
    assert "unknown key 'colour'" in proc.stderr
    assert "unknown key 'warmth'" in proc.stderr


def test_config_and_doctor_work_with_a_broken_file() -> None:
    path = _write_config("[[[\n")
    proc = run_cli("config", "path")
    assert (proc.returncode, proc.stdout.strip()) == (0, str(path))
    assert run_cli("config", "show").returncode == 2


def test_set_and_unset_round_trip() -> None:
    path = Path(os.environ["LLMCLI_CONFIG"])
    for key, value in [
        ("temperature", "0.3"),
        ("gpu_layers", "-1"),
        ("model", "qwen2.5:3b"),
        ("models.smollm2:135m.top-k", "5"),
        ("aliases.work", "owner/repo:Q5_K_M"),
    ]:
        proc = run_cli("config", "set", key, value)
        assert proc.returncode == 0, proc.stderr
    assert tomllib.loads(path.read_text()) == {
        "temperature": 0.3,
        "gpu_layers": -1,
        "model": "qwen2.5:3b",
        "models": {"smollm2:135m": {"top_k": 5}},
        "aliases": {"work": "owner/repo:Q5_K_M"},
    }
    assert run_cli("config", "unset", "models.smollm2:135m.top_k").returncode == 0
    assert "models" not in tomllib.loads(path.read_text())


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("temperature", "-1", "temperature must be at least 0"),
        ("top_p", "abc", "top_p must be a number"),
        ("ctx", "1.5", "ctx must be a whole number"),
        ("colour", "red", "unknown config key 'colour'"),
        ("model", "no-such-model", "unknown model name"),
        ("aliases.a/b", "owner/repo", "invalid alias name"),
    ],
)
def test_set_rejects_bad_input(key: str, value: str, message: str) -> None:
    proc = run_cli("config", "set", key, value)
    assert proc.returncode in (2, 3)
    assert message in proc.stderr
    assert not Path(os.environ["LLMCLI_CONFIG"]).exists()


def test_writer_round_trips(tmp_path: Path) -> None:
    doc = {
        "model": 'a "quoted" name\\',
        "seed": 3,
        "top_p": 1e-05,
        "models": {"qwen2.5:1.5b": {"temperature": 0.0}, "x.y": {"ctx": 16}},
        "aliases": {"work": "o/r:Q5_K_M"},
    }
    path = tmp_path / "config.toml"
    path.write_text('list = [1, "two", true]\n')
    for key, value in [
        ("model", doc["model"]),
        ("seed", 3),
        ("top_p", 1e-05),
        ("models.qwen2.5:1.5b.temperature", 0.0),
        ("models.x.y.ctx", 16),
        ("aliases.work", "o/r:Q5_K_M"),
    ]:
        config_edit.save(
            path, config_edit.with_value(config_edit.load(path), config_edit.parse_key(key), value)
        )
    assert tomllib.loads(path.read_text()) == {**doc, "list": [1, "two", True]}


_COMMENTED = """\
# My settings for llmcli.

temperature = 0.5  # a little warmer than the default

# Per-model overrides.
[models."smollm2:135m"]
top_k = 5   # keep it focused


[aliases]
# names of my own
work = "owner/repo:Q5_K_M"
"""


def _keeps_every_line(before: str, after: str) -> bool:
    """Every line of `before` (comments and blank lines too) is in `after`, in order."""
    remaining = iter(after.splitlines())
    return all(line in remaining for line in before.splitlines())


@pytest.mark.parametrize(
    ("key", "value"),
    [("model", "qwen2.5:3b"), ("models.qwen2.5:1.5b.ctx", "8192"), ("aliases.home", "o/r")],
)
def test_set_and_unset_keep_comments_and_layout(key: str, value: str) -> None:
    path = Path(os.environ["LLMCLI_CONFIG"])
    path.write_text(_COMMENTED)
    proc = run_cli("config", "set", key, value)
    assert proc.returncode == 0, proc.stderr
    after_set = path.read_text()
    assert _keeps_every_line(_COMMENTED, after_set), after_set
    assert config.parse_settings(tomllib.loads(after_set), path).defaults["temperature"] == 0.5
    proc = run_cli("config", "unset", key)
    assert proc.returncode == 0, proc.stderr
    after_unset = path.read_text()
    assert _keeps_every_line(_COMMENTED, after_unset), after_unset
    assert tomllib.loads(after_unset) == tomllib.loads(_COMMENTED)


def test_config_edits_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed write leaves the old file whole and no temporary file beside it."""
    path = tmp_path / "config.toml"
    path.write_text(_COMMENTED)

    def fail(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", fail)
    doc = config_edit.with_value(config_edit.load(path), config_edit.parse_key("seed"), 1)
    with pytest.raises(ConfigError, match="cannot write config file"):
        config_edit.save(path, doc)
    assert path.read_text() == _COMMENTED
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_only_config_edits_import_tomlkit() -> None:
    code = (
        "import sys\n"
        "from llmcli.cli import main\n"
        "try:\n    main(['config', 'show'])\nexcept SystemExit:\n    pass\n"
        "print('tomlkit' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.stdout.strip() == "False", proc.stderr
