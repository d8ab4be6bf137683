"""The lint and type checks the project holds itself to, run as part of the suite."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_is_clean() -> None:
    proc = _run("ruff", "check", "llmcli", "tests", "benchmarks")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean() -> None:
    proc = _run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_dead_code() -> None:
    """vulture over llmcli/ with the settings and the allow-list in pyproject.toml."""
    proc = _run("vulture")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_dead_code_exception_is_still_needed() -> None:
    """An allow-listed name whose use went away leaves the list too: without the list,
    vulture must still report each name on it."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    allowed = settings["tool"]["vulture"]["ignore_names"]
    proc = _run("vulture", "--ignore-names", "")
    reported = set(re.findall(r"unused \w+ '([^']+)'", proc.stdout))
    assert reported, proc.stdout + proc.stderr
    assert sorted(set(allowed) - reported) == []


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from llmcli.cli import app\n"
        "heavy = {'llama_cpp', 'huggingface_hub', 'numpy', 'gguf', 'rich.markdown', 'jinja2'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "[]"


def test_cache_command_does_not_import_the_engine() -> None:
    """`llmcli cache` lists and deletes files: it needs neither llama_cpp nor numpy."""
    code = (
        "import sys\n"
        "from llmcli.cli import main\n"
        "for argv in (['cache', '--json'], ['cache', 'clear', '--yes']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, (argv, exc.code)\n"
        "print(sorted({'llama_cpp', 'numpy'} & set(sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert '"entries": 0' in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "[]"


def test_only_the_engine_state_module_touches_llama_private_fields() -> None:
    """The KV cache and the Llama's record of it change together, in one module."""
    private = re.compile(
        r"\b_requires_eval\b|\binput_ids\b|llama\._ctx\b|llama\._model\b|llama\.n_tokens\s*=(?!=)"
    )
    allowed = {ROOT / "llmcli" / "engine" / "llama_state.py"}
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "llmcli").rglob("*.py"))
        if path not in allowed
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if private.search(line)
    ]
    assert found == []
