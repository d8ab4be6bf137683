"""The import rules that keep the layers apart, checked on every run.

The contracts live in pyproject.toml under [tool.importlinter]: the layers, no cycles
between siblings, and one door per third-party library. Ruff's banned-api can switch a
ban off only for whole files, so these contracts are the real guard.
"""

from __future__ import annotations

import ast
import logging
import sys
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# typer vendors Click as a private module; only llmcli/click_api.py may reach into it.
CLICK_DOOR = "llmcli/click_api.py"


def test_import_contracts_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    # import-linter configures logging with dictConfig, which disables every logger that
    # exists by then (llmcli.serve's among them) for the rest of the test run.
    loggers = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.disabled
    ]
    try:
        code = lint_imports(
            config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True
        )
    finally:
        for logger in loggers:
            logger.disabled = False
    assert code == 0, capsys.readouterr().out


def test_every_banned_library_has_a_door_contract() -> None:
    """Ruff's ban list and the contracts name the same libraries."""
    banned = set(PYPROJECT["tool"]["ruff"]["lint"]["flake8-tidy-imports"]["banned-api"])
    protected = {
        module
        for contract in PYPROJECT["tool"]["importlinter"]["contracts"]
        if contract["type"] == "protected"
        for module in contract["protected_modules"]
    }
    assert banned <= protected, sorted(banned - protected)


def _imports_private_click(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        if any(name == "typer._click" or name.startswith("typer._click.") for name in names):
            return True
    return False


def test_private_click_only_through_its_door() -> None:
    importers = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "llmcli").rglob("*.py")
        if _imports_private_click(path)
    }
    assert CLICK_DOOR in importers
    assert importers == {CLICK_DOOR}, sorted(importers)


def test_every_module_of_the_package_has_a_layer() -> None:
    """A new top-level module or package joins a layer, or the layers say nothing of it."""
    import re

    layers = next(
        contract["layers"]
        for contract in PYPROJECT["tool"]["importlinter"]["contracts"]
        if contract["type"] == "layers"
    )
    named = {name for layer in layers for name in re.findall(r"[a-z_]+", layer)}
    package = ROOT / "llmcli"
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    modules |= {p.parent.name for p in package.glob("*/__init__.py")}
    assert modules - named == set()


def _imports_of_every_module() -> dict[str, set[str]]:
    """Module -> the llmcli modules it imports, at any level: top, inside functions and
    for type checking alike."""
    package = ROOT / "llmcli"
    modules: dict[str, Path] = {}
    for path in package.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llmcli"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    graph[name].add(target if target in modules else str(node.module))
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name.startswith("llmcli")}
    return graph


def test_no_module_imports_itself_round_a_cycle_even_for_type_checking() -> None:
    graph = _imports_of_every_module()
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target in path:
                cycles.append([*path[path.index(target) :], target])
            elif target not in done and target in graph:
                visit(target, [*path, target])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert cycles == []
