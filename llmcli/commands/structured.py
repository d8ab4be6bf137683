"""--json-schema, --grammar and --format json: what the answer must look like."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcli.errors import UsageError


@dataclass(frozen=True)
class OutputFormat:
    gbnf: str
    # Set for --json-schema and --format json: the answer must parse as JSON.
    json: bool
    schema: dict[str, Any] | None = None

    def instruction(self) -> str | None:
        """Said to the model as well: a grammar alone makes a small model produce valid
        but meaningless JSON when it does not know what is wanted."""
        if self.schema is not None:
            return "Answer with JSON only, matching this JSON schema:\n" + json.dumps(self.schema)
        if self.json:
            return "Answer with a JSON object only."
        return None

    def problem_with(self, text: str, *, cut_off_at: int | None = None) -> str | None:
        """Why the answer does not meet the format, or None when it does. `cut_off_at`:
        the answer was stopped by a length limit after that many tokens."""
        if not self.json:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if cut_off_at is not None:  # the parser's complaint would only be a symptom
                return f"the answer is not valid JSON: it was cut off at {cut_off_at} tokens"
            return f"the answer is not valid JSON: {_where(exc)}"
        if self.schema is None:
            return None
        import jsonschema

        error = jsonschema.exceptions.best_match(
            jsonschema.validators.validator_for(self.schema)(self.schema).iter_errors(value)
        )
        return None if error is None else f"the answer does not match the schema: {error.message}"


def _where(error: json.JSONDecodeError) -> str:
    """The parser's reason in words: "expecting ',' delimiter at line 1, column 5"."""
    reason = error.msg[:1].lower() + error.msg[1:]
    at = "" if reason.endswith(" at") else " at"  # "Unterminated string starting at"
    return f"{reason}{at} line {error.lineno}, column {error.colno}"


def _load_schema(value: str) -> dict[str, Any]:
    text = value
    if not value.lstrip().startswith("{"):
        path = Path(value).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read JSON schema file {value}: {exc.strerror}") from exc
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"invalid JSON schema: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(schema, dict):
        raise UsageError("invalid JSON schema: it must be a JSON object")
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "top level"
        raise UsageError(f"invalid JSON schema ({where}): {exc.message}") from exc
    return schema


def schema_format(schema: dict[str, Any], source: str) -> OutputFormat:
    """The format for a JSON schema given as data (a prompt template's `schema`)."""
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise UsageError(f"invalid JSON schema in {source}: {exc.message}") from exc
    from llmcli.engine import grammar

    return OutputFormat(gbnf=grammar.schema_to_gbnf(schema), json=True, schema=schema)


def output_format(
    json_schema: str | None, grammar_file: Path | None, format_: str | None
) -> OutputFormat | None:
    """Read and check the requested format; raises UsageError before any model loads."""
    chosen = [
        name
        for name, v in (
            ("--json-schema", json_schema),
            ("--grammar", grammar_file),
            ("--format", format_),
        )
        if v is not None
    ]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} cannot be combined: choose one")
    from llmcli.engine import grammar

    if json_schema is not None:
        schema = _load_schema(json_schema)
        return OutputFormat(gbnf=grammar.schema_to_gbnf(schema), json=True, schema=schema)
    if grammar_file is not None:
        try:
            text = grammar_file.expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read grammar file {grammar_file}: {exc.strerror}") from exc
        if not text.strip():
            raise UsageError(f"grammar file {grammar_file} is empty")
        return OutputFormat(gbnf=text, json=False)
    if format_ is not None:
        if format_.lower() != "json":
            raise UsageError(f"unknown --format {format_!r}: the only format is 'json'")
        return OutputFormat(gbnf=grammar.ANY_JSON_OBJECT, json=True)
    return None
