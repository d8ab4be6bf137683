"""Tools from a Python file (--tool-file): every public function defined in it with a
docstring and type hints on its parameters. The JSON schema of its arguments comes from
the hints; the docstring's first paragraph is its description.

The file is imported as a module, so its top level runs: the user named it. Here it is
imported for the schemas; the calls run in a child process that imports it too
(tool_process), so that a call that hangs can be stopped.
"""

from __future__ import annotations

import enum
import importlib.util
import inspect
import json
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcli.errors import UsageError
from llmcli.tools.base import Tool
from llmcli.tools.tool_process import ToolProcess

_SIMPLE: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
}


@dataclass
class ToolFile:
    tools: list[Tool]
    # One line for each public function left out, and why.
    notes: list[str]
    # Where the tools' calls run; closed by whoever loaded the file.
    process: ToolProcess


def load(path: Path) -> ToolFile:
    """The file's tools. UsageError when the file cannot be read or imported, or gives
    no tool."""
    module = import_file(path)
    process = ToolProcess(path.expanduser().resolve())
    tools: list[Tool] = []
    notes: list[str] = []
    for name, function in vars(module).items():
        if name.startswith("_") or not inspect.isfunction(function):
            continue
        if function.__module__ != module.__name__:
            continue  # imported from elsewhere, not defined here
        try:
            tools.append(tool_from(function, source=str(path), process=process))
        except _NotATool as why:
            notes.append(f"{path}: {name} is not a tool: {why}")
    if not tools:
        raise UsageError(
            f"{path} defines no tool (a public function with a docstring and type hints)"
        )
    return ToolFile(tools, notes, process)


class _NotATool(Exception):
    pass


def import_file(path: Path) -> types.ModuleType:
    path = path.expanduser()
    if not path.is_file():
        raise UsageError(f"tool file {path} does not exist")
    name = f"llmcli_tools_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"tool file {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UsageError(f"tool file {path} failed to load: {type(exc).__name__}: {exc}") from exc
    return module


def tool_from(function: Callable[..., Any], *, source: str, process: ToolProcess) -> Tool:
    """The tool a function makes; _NotATool when it lacks a docstring or a hint."""
    doc = inspect.getdoc(function)
    if not doc:
        raise _NotATool("it has no docstring")
    try:
        hints = typing.get_type_hints(function)
    except Exception as exc:  # a hint naming something that does not exist
        raise _NotATool(f"its type hints cannot be read ({exc})") from exc
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(function).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise _NotATool(f"*{param.name} cannot be given as JSON")
        if param.name not in hints:
            raise _NotATool(f"parameter {param.name!r} has no type hint")
        try:
            schema = schema_of(hints[param.name])
        except TypeError as exc:
            raise _NotATool(str(exc)) from exc
        if param.default is param.empty:
            required.append(param.name)
        elif _plain(param.default):
            schema = {**schema, "default": param.default}
        properties[param.name] = schema
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    name = function.__name__
    description = doc.split("\n\n")[0].replace("\n", " ")

    def call(arguments: dict[str, Any], timeout: float) -> str:
        return process.call(name, arguments, timeout)

    return Tool(name, description, parameters, call, source)


def _plain(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def schema_of(hint: Any) -> dict[str, Any]:
    """The JSON schema of a type hint; TypeError for one JSON cannot carry."""
    if hint in _SIMPLE:
        return dict(_SIMPLE[hint])
    if hint is Any:
        return {}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [member.value for member in hint]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [schema_of(a) for a in args]}
    if hint in (list, tuple, set, frozenset):
        return {"type": "array"}
    if origin in (list, set, frozenset) or (origin is tuple and args[-1:] == (Ellipsis,)):
        return {"type": "array", "items": schema_of(args[0])}
    if hint is dict or origin is dict:
        if args and args[0] is not str:
            raise TypeError(f"{hint} has keys that are not text")
        return {"type": "object"}
    raise TypeError(f"its hint {hint!r} has no JSON form")


def as_text(value: Any) -> str:
    """A function's return value as the model reads it: text as it is, else JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)
