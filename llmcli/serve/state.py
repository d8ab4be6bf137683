"""What every handler of `llmcli serve` shares: the model, the scheduler and the settings.

Plain data handed over by the command, and what the handlers derive from it (whether a
name means the served model, the cached models, the embedding model, a grammar), with
the modules that know how imported here, when first asked.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmcli.engine.model import Model
    from llmcli.engine.scheduler import Job, Scheduler
    from llmcli.engine.tool_calls import CallFormat
    from llmcli.engine.types import Sampling
    from llmcli.remember import AnswerLog
    from llmcli.serve.residency import Residency


@dataclass
class ServerState:
    # The served model and its scheduler, loaded on demand (see residency.py).
    residency: Residency
    served_name: str
    # The model's file, and the reference it was named by (`-m`, or the default).
    model_path: Path
    model_ref: str
    defaults: Sampling
    api_key: str | None
    max_body_bytes: int
    # How the embedding model loads on first use: the file above, each text within one
    # sequence's context, on the threads and GPU layers the server was given.
    ctx: int
    threads: int | None = None
    gpu_layers: int | None = None
    verbose: bool = False
    embedder: Model | None = None
    # The same file loaded with rank pooling, for /v1/rerank (a reranker GGUF only).
    reranker: Model | None = None
    # What browsers may reach (see guard.py): the address listened on, the Host names
    # and the page origins the user allowed.
    bound_host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    # The most bytes one token of the model stands for; None when not yet known, 0 when
    # the tokenizer gives no such bound (see engine.vocab.max_token_bytes).
    max_token_bytes: int | None = None
    # Where answers are logged (`serve --log`); None: they are not.
    answer_log: AnswerLog | None = None
    # Whether the log has said that the model's template cannot render tools.
    tools_prompt_noted: bool = False
    embed_lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.time)

    @property
    def model(self) -> Model:
        """The served model, for a handler that holds it (app.py `_holding`)."""
        return self.residency.loaded().model

    @property
    def scheduler(self) -> Scheduler:
        return self.residency.loaded().scheduler

    def cancel(self, job: Job) -> None:
        """Stop a job whose client left; nothing to do once the model is unloaded (a job
        it answered had finished)."""
        resident = self.residency.current
        if resident is not None:
            resident.scheduler.cancel(job)

    def same_model(self, name: str) -> bool:
        """Whether a request's `model` names the served model: by file name, or as any
        reference to the same model as the one it was started with, or its path."""
        from llmcli.resolve.resolver import same_model

        return (
            name == self.model_path.name
            or same_model(name, self.model_ref)
            or same_model(name, str(self.model_path))
        )

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
        if fmt.described and not self.tools_prompt_noted:
            self.tools_prompt_noted = True
            line(
                "tools: the model's chat template does not render tools; they are described "
                "in a system message"
            )
        return fmt
