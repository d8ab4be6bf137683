"""What every handler of `llmcli serve` shares: the loaded models and the settings.

Plain data handed over by the command, and what the handlers derive from it (which model
a request's name means, the cached models, a model's embedding model, a grammar), with
the modules that know how imported here, when first asked. A handler holding a model
works on `holding(resident)`: the same state, bound to that model, so that `state.model`,
`state.scheduler` and `state.name` are the request's.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcli.errors import LlmcliError

if TYPE_CHECKING:
    from llmcli.engine.model import Model
    from llmcli.engine.scheduler import Job, Scheduler
    from llmcli.engine.tool_calls import CallFormat
    from llmcli.engine.types import Sampling
    from llmcli.remember import AnswerLog
    from llmcli.serve.residency import Residency, Resident


@dataclass
class ServerState:
    # The loaded models and their schedulers, loaded on demand (see residency.py).
    residency: Residency
    # The model a request that names none gets (`-m`, or the default): its name, its
    # file, and the reference it was named by.
    default_name: str
    default_path: Path
    default_ref: str
    defaults: Sampling
    api_key: str | None
    max_body_bytes: int
    # How a model's embedding model loads on first use: its file, each text within one
    # sequence's context, on the threads and GPU layers the server was given.
    ctx: int
    threads: int | None = None
    gpu_layers: int | None = None
    verbose: bool = False
    # What browsers may reach (see guard.py): the address listened on, the Host names
    # and the page origins the user allowed.
    bound_host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    # Whether answers go to the answer log (`serve --log`), one log per model.
    log_answers: bool = False
    answer_logs: dict[str, AnswerLog] = field(default_factory=dict)
    # Whether image_url parts may name http(s) URLs the server fetches
    # (`serve --allow-remote-media`).
    allow_remote_media: bool = False
    # The model the request holds; None in the state shared by all (see `holding`).
    held: Resident | None = None
    started: float = field(default_factory=time.time)

    def holding(self, resident: Resident) -> ServerState:
        return dataclasses.replace(self, held=resident)

    @property
    def resident(self) -> Resident:
        if self.held is None:
            raise LlmcliError("no model is held for this request")
        return self.held

    @property
    def name(self) -> str:
        """The held model's name, as answers give it."""
        return self.resident.name

    @property
    def model(self) -> Model:
        return self.resident.model

    @property
    def scheduler(self) -> Scheduler:
        return self.resident.scheduler

    @property
    def model_path(self) -> Path:
        return self.resident.path

    @property
    def answer_log(self) -> AnswerLog | None:
        """The held model's answer log; None when answers are not logged."""
        if not self.log_answers:
            return None
        log = self.answer_logs.get(self.name)
        if log is None:
            from llmcli.remember import AnswerLog

            log = AnswerLog(
                enabled=True, command="serve", model_name=self.name, model_path=self.model_path
            )
            self.answer_logs[self.name] = log
        return log

    def cancel(self, job: Job) -> None:
        """Stop a job whose client left (the model stays loaded until it ends)."""
        self.scheduler.cancel(job)

    def is_default(self, name: str) -> bool:
        """Whether a request's `model` names the default model: by file name, or as any
        reference to the same model as the one it was started with, or its path."""
        from llmcli.resolve.resolver import same_model

        return (
            name == self.default_name
            or name == self.default_path.name
            or same_model(name, self.default_ref)
            or same_model(name, str(self.default_path))
        )

    def find_model(self, name: str) -> tuple[str, Path] | None:
        """The model a request's `model` names, as (its name, its file): the default,
        one loaded, or one `llmcli list` shows; None if none. Only cached models count:
        a client cannot make the server read a path of its choosing, nor download."""
        loaded = self.residency.get(name)
        if loaded is not None:
            return loaded.name, loaded.path
        if self.is_default(name):
            return self.default_name, self.default_path
        from llmcli.resolve.resolver import same_model

        names = self.cached_models()
        match = name if name in names else next((n for n in names if same_model(name, n)), None)
        if match is None:
            return None
        loaded = self.residency.get(match)
        if loaded is not None:
            return loaded.name, loaded.path
        path = _cached_path(match)
        return None if path is None else (match, path)

    def cached_models(self) -> list[str]:
        from llmcli.store import cached_model_names

        return cached_model_names()

    def load_embedder(self) -> Model:
        from llmcli.engine.vectors import load_embedder

        return load_embedder(
            self.model_path,
            n_ctx=self.ctx,
            n_threads=self.threads,
            n_gpu_layers=self.gpu_layers,
            verbose=self.verbose,
        )

    def load_reranker(self) -> Model:
        from llmcli.engine.rerank import load_reranker

        return load_reranker(
            self.model_path,
            n_ctx=self.ctx,
            n_threads=self.threads,
            n_gpu_layers=self.gpu_layers,
            verbose=self.verbose,
        )

    def grammar_for(self, schema: dict[str, Any]) -> str:
        """The grammar for `response_format`: any JSON object, or the schema's, checked
        against the model's vocabulary."""
        from llmcli.engine.grammar import ANY_JSON_OBJECT, check_grammar, schema_to_gbnf

        if not schema:
            return ANY_JSON_OBJECT
        gbnf = schema_to_gbnf(schema)
        check_grammar(self.model_path, gbnf)
        return gbnf

    def call_format(self) -> CallFormat:
        """How the model writes tool calls (engine.tool_calls); the first time its template
        proves unable to render tools, the log says that they go in a system prompt."""
        from llmcli.engine.tool_calls import call_format
        from llmcli.serve.log import line

        fmt = call_format(self.model.tokenizer.chat_template)
        if fmt.described and not self.resident.tools_prompt_noted:
            self.resident.tools_prompt_noted = True
            line(
                f"tools: the chat template of {self.name} does not render tools; they are "
                "described in a system message"
            )
        return fmt

    def close_logs(self) -> list[str]:
        """Close every answer log; what could not be logged, if anything."""
        failures = [log.close() for log in self.answer_logs.values()]
        return [f for f in failures if f]


def _cached_path(name: str) -> Path | None:
    """The cached file of a name `llmcli list` gives, found without the network."""
    from llmcli.model_refs import HubRef
    from llmcli.resolve.resolver import parse
    from llmcli.store import find_cached

    try:
        ref = parse(name)
    except LlmcliError:
        return None
    if not isinstance(ref, HubRef):
        return None
    found = find_cached(ref)
    return None if found is None else found.path
