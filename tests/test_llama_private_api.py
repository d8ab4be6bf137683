"""The private llama-cpp-python API llmcli relies on is still there, in the shape used.

llmcli drives the bindings' low-level classes (`llama_cpp._internals`: LlamaBatch,
LlamaContext, LlamaSampler) and a few of `Llama`'s private fields (`_ctx`, `_model`, ...)
for what the public API cannot do. Nothing promises either across releases, so an upgrade
that renames a method, moves an attribute or changes a signature must fail here, by name,
rather than as an AttributeError in the middle of an answer.

The list is not written down: mypy's type analysis of llmcli/ finds every attribute read,
written or called on an object of an `_internals` class, and every underscore attribute of
any llama_cpp class, with the arguments of each call. Each is then looked up on the
installed classes, and each call is bound to the installed signature. A use through an
untyped value (Any) is invisible to this; a plain scan of the `_internals` imports checks
that at least every class imported is seen in use. mypy's build API is its own internal
interface: a mypy upgrade may break this test, never llmcli.
"""

from __future__ import annotations

import ast
import ctypes
import importlib
import inspect
import os
import sys
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INTERNALS = "llama_cpp._internals"


@dataclass(frozen=True)
class Use:
    cls: str  # fullname of the class the value has, e.g. llama_cpp._internals.LlamaBatch
    attr: str  # "__init__" for a constructor call
    where: str  # path:line
    # For a call: the number of positional arguments and the keyword names; None when the
    # attribute is only read or written. `star`: the call spreads *args or **kwargs.
    positional: int | None = None
    keywords: tuple[str, ...] = ()
    star: bool = False


def _imported_from_internals() -> dict[str, list[str]]:
    """Name -> where llmcli takes it from `llama_cpp._internals` (import or attribute)."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "llmcli").rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == INTERNALS:
                for alias in node.names:
                    found.setdefault(alias.name, []).append(f"{where}:{node.lineno}")
            elif isinstance(node, ast.Attribute) and ast.unparse(node.value) == INTERNALS:
                found.setdefault(node.attr, []).append(f"{where}:{node.lineno}")
    return found


def _is_private_api(module: str, attr: str) -> bool:
    if module == INTERNALS:
        return True
    dunder = attr.startswith("__") and attr.endswith("__")
    return module.split(".")[0] == "llama_cpp" and attr.startswith("_") and not dunder


@cache
def _uses() -> tuple[Use, ...]:
    """Every use of the private API in llmcli/, from mypy's types of its expressions."""
    from mypy import build
    from mypy.config_parser import parse_config_file
    from mypy.find_sources import create_source_list
    from mypy.nodes import ARG_NAMED, ARG_POS, CallExpr, MemberExpr, RefExpr, TypeInfo
    from mypy.options import Options
    from mypy.server.subexpr import get_subexpressions
    from mypy.types import Instance, UnionType, get_proper_type

    options = Options()
    parse_config_file(options, lambda: None, str(ROOT / "pyproject.toml"), sys.stdout, sys.stderr)
    options.incremental = False
    options.cache_dir = os.devnull
    options.export_types = True
    options.preserve_asts = True
    # Only llmcli and llama_cpp need analysing; the other libraries (numpy above all)
    # would triple the time and decide nothing here.
    options.follow_imports = "skip"
    for pattern in ("llmcli.*", "llama_cpp.*"):
        options.per_module_options.setdefault(pattern, {})["follow_imports"] = "normal"
    sources = create_source_list([str(ROOT / "llmcli")], options)
    # Type errors are test_code_quality's business; this needs only the types.
    result = build.build(sources, options)

    def classes(expr: object) -> list[TypeInfo]:
        typ = get_proper_type(result.types.get(expr))
        items = typ.items if isinstance(typ, UnionType) else [typ]
        infos = [get_proper_type(item) for item in items]
        return [info.type for info in infos if isinstance(info, Instance)]

    uses: list[Use] = []
    for module, state in sorted(result.graph.items()):
        if not module.startswith("llmcli") or state.tree is None:
            continue
        path = Path(state.xpath).resolve().relative_to(ROOT).as_posix()
        called: dict[int, CallExpr] = {}
        expressions = get_subexpressions(state.tree)
        for expr in expressions:
            if isinstance(expr, CallExpr):
                called[id(expr.callee)] = expr
        for expr in expressions:
            target: list[tuple[str, str]] = []
            if isinstance(expr, MemberExpr):
                # An attribute of an object: `batch.set_batch`, `llama._ctx`.
                target = [
                    (info.fullname, expr.name)
                    for info in classes(expr.expr)
                    if _is_private_api(info.module_name, expr.name)
                ]
            if isinstance(expr, RefExpr) and id(expr) in called:
                # A class or function of `_internals` called by its name.
                node = expr.node
                fullname = getattr(node, "fullname", "")
                if fullname.startswith(f"{INTERNALS}."):
                    attr = "__init__" if isinstance(node, TypeInfo) else ""
                    target.append((fullname, attr))
            call = called.get(id(expr))
            for cls, attr in target:
                where = f"{path}:{expr.line}"
                if call is None:
                    uses.append(Use(cls, attr, where))
                    continue
                uses.append(
                    Use(
                        cls,
                        attr,
                        where,
                        positional=sum(kind == ARG_POS for kind in call.arg_kinds),
                        keywords=tuple(
                            name or ""
                            for kind, name in zip(call.arg_kinds, call.arg_names, strict=True)
                            if kind == ARG_NAMED
                        ),
                        star=any(kind not in (ARG_POS, ARG_NAMED) for kind in call.arg_kinds),
                    )
                )
    return tuple(uses)


def _installed(fullname: str) -> object:
    module, _, name = fullname.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _instance_attributes(cls: type) -> set[str]:
    """What `self.X = ...` sets in the class's own code or its bases' (within llama_cpp)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("llama_cpp"):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        for node in ast.walk(ast.parse(source)):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                targets = [node.target]
            for target in targets:
                for part in ast.walk(target):
                    if (
                        isinstance(part, ast.Attribute)
                        and isinstance(part.value, ast.Name)
                        and part.value.id == "self"
                    ):
                        names.add(part.attr)
    return names


def _signature_of(cls: type, attr: str) -> inspect.Signature | None:
    """The signature a call through an instance sees; None when it cannot be read."""
    try:
        if attr == "__init__":
            return inspect.signature(cls)
        member = inspect.getattr_static(cls, attr)
        if isinstance(member, staticmethod):
            return inspect.signature(member.__func__)
        if isinstance(member, classmethod):
            return inspect.signature(getattr(cls, attr))
        if inspect.isfunction(member):
            # Through an instance `self` is bound: drop it.
            params = list(inspect.signature(member).parameters.values())[1:]
            return inspect.Signature(params)
        return None
    except (TypeError, ValueError):
        return None


def _problem(use: Use) -> str | None:
    name = f"{use.cls}.{use.attr}" if use.attr else use.cls
    try:
        found = _installed(use.cls)
    except (ImportError, AttributeError):
        return f"{use.where}: {use.cls} is gone"
    if use.attr and isinstance(found, type):
        cls = found
        try:
            inspect.getattr_static(cls, use.attr)
        except AttributeError:
            if use.attr not in _instance_attributes(cls):
                return f"{use.where}: {name} is gone"
        if use.positional is None:
            return None
        signature = _signature_of(cls, use.attr)
    elif use.positional is not None and callable(found):
        signature = inspect.signature(found)
    else:
        return None
    if signature is None:
        return None
    args = [object()] * use.positional
    kwargs = dict.fromkeys(use.keywords, object())
    try:
        if use.star:
            signature.bind_partial(**kwargs)
        else:
            signature.bind(*args, **kwargs)
    except TypeError as exc:
        shape = ", ".join([f"{use.positional} positional", *[f"{k}=" for k in use.keywords]])
        return f"{use.where}: {name}{signature} no longer takes ({shape}): {exc}"
    return None


def test_the_private_api_used_is_found_in_the_source() -> None:
    """The analysis sees every class llmcli imports from `_internals` in use; were it to
    see nothing (types turned Any, the analysis broken), the checks below would pass
    vacuously."""
    imported = _imported_from_internals()
    assert imported, "llmcli no longer uses llama_cpp._internals: this test can go"
    seen = {use.cls.rpartition(".")[2] for use in _uses() if use.cls.startswith(INTERNALS)}
    assert sorted(set(imported) - seen) == []


def test_every_name_imported_from_internals_exists() -> None:
    internals = importlib.import_module(INTERNALS)
    missing = [
        f"{where}: {INTERNALS}.{name}"
        for name, places in sorted(_imported_from_internals().items())
        for where in places
        if not hasattr(internals, name)
    ]
    assert missing == []


def test_every_private_attribute_and_call_fits_the_installed_bindings() -> None:
    problems = sorted({p for p in map(_problem, _uses()) if p is not None})
    assert problems == [], "llama-cpp-python changed its private API:\n" + "\n".join(problems)


def test_the_tensor_mirror_matches_ggml() -> None:
    """capture.py reads graph nodes through its own copy of `struct ggml_tensor`; a ggml
    that adds or moves a field would have it read the wrong bytes. ggml exports the size
    of a tensor with its object header, not the tensor alone."""
    from llmcli.engine import capture

    class GgmlObject(ctypes.Structure):
        # struct ggml_object (ggml.c): the header before each tensor in a ggml context.
        _fields_ = [
            ("offs", ctypes.c_size_t),
            ("size", ctypes.c_size_t),
            ("next", ctypes.c_void_p),
            ("type", ctypes.c_int),
            ("padding", ctypes.c_char * 4),
        ]

    overhead = capture._ggml_base().ggml_tensor_overhead
    overhead.argtypes = []
    overhead.restype = ctypes.c_size_t
    assert overhead() == ctypes.sizeof(GgmlObject) + capture.SIZE
