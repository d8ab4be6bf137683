"""The distributions pyproject.toml declares are the ones llmcli imports."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# Extras that llmcli's own code imports from (the others are for tests or bring data).
CODE_EXTRAS = ("plot",)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distribution(requirement: str) -> str:
    return _normalized(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0])


def _imported_modules() -> dict[str, set[str]]:
    """Top-level third-party modules llmcli imports (lazily too), with the files."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "llmcli").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top != "llmcli" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(path.relative_to(ROOT).as_posix())
    return found


def _imported_distributions() -> dict[str, set[str]]:
    by_module = packages_distributions()
    found: dict[str, set[str]] = {}
    for module, files in _imported_modules().items():
        # An optional extra may be absent here: its import name is then its name.
        for dist in by_module.get(module, [module]):
            found.setdefault(_normalized(dist), set()).update(files)
    return found


def test_every_imported_library_is_declared() -> None:
    declared = {_distribution(r) for r in PROJECT["dependencies"]}
    for extra in CODE_EXTRAS:
        declared |= {_distribution(r) for r in PROJECT["optional-dependencies"][extra]}
    undeclared = {d: sorted(f) for d, f in _imported_distributions().items() if d not in declared}
    assert not undeclared, f"imported but not in pyproject.toml: {undeclared}"


def test_every_dependency_is_imported() -> None:
    imported = set(_imported_distributions())
    unused = {_distribution(r) for r in PROJECT["dependencies"]} - imported
    assert not unused, f"declared but never imported: {sorted(unused)}"
