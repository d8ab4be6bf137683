"""Constrained generation: JSON schemas and GBNF grammars, checked before the model loads.

The engine's chat path quietly falls back to "any JSON" when a schema fails to convert,
and llama.cpp rejects a bad grammar only once the weights are loaded (by returning NULL,
which the bindings then use). Here both are checked first and fail loudly.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import llama_grammar

from llmcli.errors import UsageError

ANY_JSON_OBJECT = r"""
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws     ::= | " " | "\n" [ \t]{0,20}
"""


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    try:
        return str(llama_grammar.json_schema_to_gbnf(json.dumps(schema)))
    except Exception as exc:  # the converter raises bare Exception/KeyError/ValueError
        raise UsageError(f"the JSON schema cannot be turned into a grammar: {exc}") from exc


@contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Collect what llama.cpp writes to fd 2 (its grammar parser explains errors there
    with fprintf, bypassing the log callback) instead of letting it reach the user."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", errors="replace").splitlines())


def check_grammar(model_path: Path, gbnf: str) -> None:
    """Parse `gbnf` against the model's vocabulary (vocabulary only, no weights)."""
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    with _captured_stderr() as log:
        model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), params)
        if not model:
            return  # the full load reports what is wrong with the file
        try:
            vocab = llama_cpp.llama_model_get_vocab(model)
            sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
            if sampler:
                llama_cpp.llama_sampler_free(sampler)
                return
        finally:
            llama_cpp.llama_model_free(model)
    marker = "error parsing grammar:"
    reason = next((ln for ln in log if marker in ln), "")
    detail = reason.split(marker, 1)[1].strip() if reason else "llama.cpp cannot parse it"
    raise UsageError(f"invalid grammar: {detail}")
