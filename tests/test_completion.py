"""Shell completion: checked-in scripts, the completion protocol, and its speed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmcli.completion import scripts

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("llama_cpp", "huggingface_hub", "numpy", "rich", "jinja2", "gguf")


def _fake_cached_model(cache: Path, repo: str = "someone/Tiny-GGUF") -> str:
    """A complete cache entry in huggingface_hub's layout; returns its `list` name."""
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    (repo_dir / "blobs").mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    snapshot = repo_dir / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo_dir / "blobs" / "0123").write_bytes(b"GGUF")
    (snapshot / "Tiny-Q8_0.gguf").symlink_to("../../blobs/0123")
    (repo_dir / "refs" / "main").write_text("a" * 40)
    return f"{repo}:Q8_0"


def _complete(
    env: dict[str, str], *, launcher: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = launcher or [sys.executable, "-m", "llmcli"]
    return subprocess.run(
        cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False
    )


def _bash_words(line: str) -> dict[str, str]:
    words = line.split(" ")
    return {
        "_LLMCLI_COMPLETE": "bash_complete",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1),
    }


def test_checked_in_scripts_are_current() -> None:
    for shell, name in scripts.SCRIPT_FILES.items():
        path = ROOT / "completions" / name
        assert path.read_text(encoding="utf-8") == scripts.script(shell), (
            f"{path} is stale: run python -m llmcli.completion"
        )


def test_completion_command_prints_the_script() -> None:
    proc = _complete({}, launcher=[sys.executable, "-m", "llmcli", "completion", "zsh"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (ROOT / "completions" / "_llmcli").read_text(encoding="utf-8")


def test_model_option_lists_cached_models_and_aliases(isolated_home: Path) -> None:
    cached = _fake_cached_model(Path(os.environ["HF_HUB_CACHE"]))
    Path(os.environ["LLMCLI_CONFIG"]).write_text('[aliases]\nwork = "owner/repo:Q5_K_M"\n')
    proc = _complete(_bash_words("llmcli run -m "))
    assert proc.returncode == 0, proc.stderr
    values = [line.split(",", 1)[1] for line in proc.stdout.splitlines()]
    assert values[0] == cached  # cached models come first
    assert {"work", "qwen2.5:1.5b", "smollm2:135m", "smollm2"} <= set(values)


def test_console_script_answers_too(isolated_home: Path) -> None:
    script = Path(sys.executable).parent / "llmcli"
    if not script.exists():
        pytest.skip("llmcli is not installed as a console script in this environment")
    cached = _fake_cached_model(Path(os.environ["HF_HUB_CACHE"]))
    proc = _complete(_bash_words("llmcli show someone/"), launcher=[str(script)])
    assert proc.stdout.splitlines() == [f"plain,{cached}"]


def test_rm_completes_only_cached_models(isolated_home: Path) -> None:
    cached = _fake_cached_model(Path(os.environ["HF_HUB_CACHE"]))
    proc = _complete(_bash_words("llmcli rm "))
    assert proc.stdout.splitlines() == [f"plain,{cached}"]


def test_commands_and_options_complete() -> None:
    assert "plain,config" in _complete(_bash_words("llmcli con")).stdout.splitlines()
    options = _complete(_bash_words("llmcli run --tem")).stdout.splitlines()
    assert options == ["plain,--temperature", "plain,--template"]
    options = _complete(_bash_words("llmcli run --tempe")).stdout.splitlines()
    assert options == ["plain,--temperature"]
    templates = _complete(_bash_words("llmcli run -t tr")).stdout.splitlines()
    assert templates == ["plain,translate"]


def test_bash_colon_in_model_names() -> None:
    """bash replaces only the text after `:`, so only that part is sent back."""
    line = "llmcli run --model=qwen2.5:1"
    env = {
        "_LLMCLI_COMPLETE": "bash_complete",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "COMP_WORDBREAKS": "\"'><=;|&(:",
    }
    assert _complete(env).stdout.splitlines() == ["plain,1.5b"]


def test_zsh_and_fish_answers_carry_help() -> None:
    zsh = _complete(
        {
            "_LLMCLI_COMPLETE": "zsh_complete",
            "COMP_WORDS": "llmcli pull qwen2.5:3",
            "COMP_CWORD": "2",
        }
    ).stdout.splitlines()
    assert zsh == ["plain", r"qwen2.5\:3b", "Qwen/Qwen2.5-3B-Instruct-GGUF"]
    fish = _complete(
        {
            "_LLMCLI_COMPLETE": "fish_complete",
            "COMP_WORDS": "llmcli pull qwen2.5:3",
            "COMP_CWORD": "qwen2.5:3",
        }
    ).stdout.splitlines()
    assert fish == ["plain,qwen2.5:3b\tQwen/Qwen2.5-3B-Instruct-GGUF"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_script_fills_compreply(isolated_home: Path) -> None:
    program = f'#!/bin/sh\nexec "{sys.executable}" -m llmcli "$@"\n'
    bindir = isolated_home / "bin"
    bindir.mkdir()
    (bindir / "llmcli").write_text(program)
    (bindir / "llmcli").chmod(0o755)
    script = ROOT / "completions" / "llmcli.bash"
    shell = (
        f"source '{script}'; COMP_LINE='llmcli run -m qwen2.5:'; COMP_POINT=${{#COMP_LINE}}; "
        "COMP_WORDS=(llmcli run -m qwen2.5 :); COMP_CWORD=4; "
        '_llmcli_completion llmcli; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", shell],
        env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout.split() == ["0.5b", "1.5b", "3b"], proc.stderr


def test_completion_imports_nothing_heavy(isolated_home: Path) -> None:
    _fake_cached_model(Path(os.environ["HF_HUB_CACHE"]))
    code = (
        "import sys\n"
        "from llmcli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy), file=sys.stderr)\n"
    )
    proc = _complete(_bash_words("llmcli run -m "), launcher=[sys.executable, "-c", code])
    assert "someone/Tiny-GGUF:Q8_0" in proc.stdout
    assert proc.stderr.strip() == "[]"
