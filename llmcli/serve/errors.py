"""From an exception to OpenAI's error object: the one table the server answers errors by.

Handlers and the engine raise; nothing below the edge decides a status. The middleware in
app.py turns whatever a handler raises into `{"error": {message, type, param, code}}`
with the status of the first row below whose type matches (so subclasses go first). A
protocol error (protocol.ApiError) already says all of that and passes as it is. An
exception no row names is the server's own failure: 500, a message that gives nothing of
the server away, and the traceback in the server's log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llmcli.engine.scheduler import QueueFullError
from llmcli.errors import (
    ContextOverflowError,
    DiskError,
    EngineCrashError,
    LlmcliError,
    ModelInvalidError,
    ModelNotFoundError,
    UsageError,
)
from llmcli.serve import log
from llmcli.serve import protocol as p
from llmcli.serve.residency import NoRoomError, TooLargeError

# How long a client told the server is busy waits before it asks again.
RETRY_AFTER_S = 1
# The field that holds what is to be read, for each endpoint: a prompt too long or
# refused by the engine is that field's fault.
PROMPT_FIELDS: Mapping[str, str] = {
    "/v1/chat/completions": "messages",
    "/v1/completions": "prompt",
    "/v1/embeddings": "input",
    "/v1/messages": "messages",
    "/v1/messages/count_tokens": "messages",
    "/v1/rerank": "documents",
    "/rerank": "documents",
}
INTERNAL_MESSAGE = "the server failed to answer this request (its log says why)"


@dataclass(frozen=True)
class Rule:
    status: int
    kind: str = "invalid_request_error"
    code: str | None = None
    # The client's message; `{}` stands for the exception's own (domain errors carry
    # messages written for whoever made the request).
    message: str = "{}"
    # Whether `param` names the endpoint's prompt field (PROMPT_FIELDS); else it is null.
    names_prompt: bool = False
    # Whether `param` is "model": the model the request named is what cannot be served.
    param_model: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    # The server's own failure: the traceback goes to the server's log.
    internal: bool = False


INTERNAL = Rule(500, kind="server_error", message=INTERNAL_MESSAGE, internal=True)

# Ordered: the first row whose types match the exception decides.
TABLE: tuple[tuple[tuple[type[Exception], ...], Rule], ...] = (
    # json.loads on a body nested thousands deep; the request's fault, not the server's.
    ((RecursionError,), Rule(400, message=p.TOO_DEEP)),
    ((ContextOverflowError,), Rule(400, code="context_length_exceeded", names_prompt=True)),
    # The scheduler's refusals of a prompt (empty), the embedder's of an empty text.
    ((UsageError,), Rule(400, names_prompt=True)),
    (
        (QueueFullError,),
        Rule(
            503,
            kind="server_error",
            code="server_busy",
            message="the server is busy: {}; retry shortly",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ),
    ),
    # A model that cannot be loaded until the models in the way finish their answers
    # (busy ones are never unloaded for it): worth asking again.
    (
        (NoRoomError,),
        Rule(
            503,
            kind="server_error",
            code="model_capacity",
            param_model=True,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ),
    ),
    # A model larger than the whole memory budget: asking again cannot help. 507
    # (Insufficient Storage) is what it is; clients read the code.
    ((TooLargeError,), Rule(507, kind="server_error", code="model_too_large", param_model=True)),
    # A model file gone or broken since the server started (the embedding model loads
    # on first use), an engine or disk failure: the server's fault, whose messages name
    # the server's files.
    ((ModelNotFoundError, ModelInvalidError, EngineCrashError, DiskError), INTERNAL),
    # What remains of the project's errors says the server cannot take the request now:
    # the scheduler's "the server is shutting down".
    ((LlmcliError,), Rule(503, kind="server_error")),
)


def rule_for(exc: Exception) -> Rule:
    return next((rule for types, rule in TABLE if isinstance(exc, types)), INTERNAL)


def api_error(exc: Exception, method: str, path: str) -> p.ApiError:
    """The error to answer `method path` with, after `exc` was raised answering it."""
    if isinstance(exc, p.ApiError):
        return exc
    rule = rule_for(exc)
    if rule.internal:
        log.failure(f'error answering "{method} {path}": {type(exc).__name__}: {exc}', exc)
    return p.ApiError(
        rule.status,
        rule.message.format(exc),
        kind=rule.kind,
        param="model"
        if rule.param_model
        else PROMPT_FIELDS.get(path)
        if rule.names_prompt
        else None,
        code=rule.code,
        headers=dict(rule.headers),
    )
