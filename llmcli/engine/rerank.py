"""Reranking: how relevant each document is to a query, by a GGUF reranker model.

A reranker is a cross-encoder: the query and one document are read together, and a
classification head on top of the model gives one score for the pair (llama.cpp's rank
pooling). Its GGUF says so with `{arch}.pooling_type` = 4. Loading any other model with
rank pooling makes llama.cpp abort the process when it builds the graph (there is no
head to attach), so that is refused first, from the header.

The pair is laid out as llama.cpp's server lays it out: by the model's own `rerank`
template when its GGUF has one ({query} and {document} replaced, special tokens read),
else [BOS] query [EOS] [SEP] document [EOS], each marker only where the vocabulary adds
it. The score is the head's first output, unchanged (llama-server's relevance_score):
higher is more relevant, and its scale is the model's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
from llama_cpp._internals import LlamaBatch

from llmcli.engine.model import Model
from llmcli.engine.types import LoadOptions
from llmcli.errors import ContextOverflowError, UsageError
from llmcli.gguf_file.header import read_header

# llama.cpp's enum llama_pooling_type: 4 is rank (a classification head on the pair).
POOLING_RANK = 4
TEMPLATE_KEY = "tokenizer.chat_template.rerank"


class NotARerankerError(UsageError):
    """The model has no classification head to score a query and a document with."""


class EmptyRerankInputError(UsageError):
    """A query or document of no text."""


@dataclass(frozen=True)
class Ranked:
    index: int  # the document's place in the request
    score: float
    tokens: int  # the pair's tokens, for usage


def is_reranker(path: Path) -> bool:
    meta = read_header(path).metadata
    arch = meta.get("general.architecture")
    return meta.get(f"{arch}.pooling_type") == POOLING_RANK


def check_reranker(path: Path) -> None:
    if not is_reranker(path):
        raise NotARerankerError(
            f"{path.name} is not a reranker: its GGUF declares no rank pooling "
            "(a reranker model, e.g. a bge-reranker or Qwen3-Reranker GGUF, is needed)"
        )


def load_reranker(
    path: Path,
    *,
    n_ctx: int,
    n_threads: int | None = None,
    n_gpu_layers: int | None = None,
    verbose: bool = False,
    notify: Callable[[str], None] | None = None,
) -> Model:
    check_reranker(path)
    # One batch holds a whole pair: encoder models read all of it at once.
    return Model(
        LoadOptions(
            path=path,
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_threads=n_threads,
            n_gpu_layers=n_gpu_layers,
            embedding=True,
            pooling="rank",
            verbose=verbose,
        ),
        notify=notify,
    )


@dataclass(frozen=True)
class Markers:
    """The vocabulary's special tokens that frame a pair, None where it adds none."""

    bos: int | None
    eos: int | None
    sep: int | None


def pair_layout(query: Sequence[int], document: Sequence[int], markers: Markers) -> list[int]:
    """[BOS] query [EOS] [SEP] document [EOS], each marker only where the model has it."""
    head = [markers.bos] if markers.bos is not None else []
    end = [markers.eos] if markers.eos is not None else []
    sep = [markers.sep] if markers.sep is not None else []
    return [*head, *query, *end, *sep, *document, *end]


def _markers(model: Model) -> Markers:
    vocab = model.vocab
    eos = int(llama_cpp.llama_vocab_eos(vocab))
    sep = int(llama_cpp.llama_vocab_sep(vocab))
    if eos == llama_cpp.LLAMA_TOKEN_NULL:
        eos = sep  # as llama.cpp's server does for vocabularies without EOS
    return Markers(
        bos=int(llama_cpp.llama_vocab_bos(vocab))
        if llama_cpp.llama_vocab_get_add_bos(vocab)
        else None,
        eos=eos if llama_cpp.llama_vocab_get_add_eos(vocab) else None,
        sep=sep if llama_cpp.llama_vocab_get_add_sep(vocab) else None,
    )


def pair_tokens(model: Model, query: str, document: str) -> list[int]:
    template = model.llama.metadata.get(TEMPLATE_KEY)
    if template:
        # Both replaced in one pass, so that a query holding "{document}" stays text.
        text = re.sub(
            r"\{(query|document)\}", lambda m: query if m[1] == "query" else document, template
        )
        return model.tokenize(text, add_bos=False, special=True)
    # The texts' own markers stay text: a document cannot end the query early.
    q = model.tokenize(query, add_bos=False)
    d = model.tokenize(document, add_bos=False)
    return pair_layout(q, d, _markers(model))


def rerank(model: Model, query: str, documents: Sequence[str]) -> list[Ranked]:
    """Each document's score, in the order given."""
    if not query.strip():
        raise EmptyRerankInputError("the query is empty: give some text to rank by")
    for i, document in enumerate(documents):
        if not document.strip():
            raise EmptyRerankInputError(f"document {i + 1} is empty: each needs some text")
    pairs = [pair_tokens(model, query, d) for d in documents]
    for tokens in pairs:
        if len(tokens) > model.n_ctx:
            raise ContextOverflowError(
                f"a query and document are {len(tokens)} tokens together, but the context "
                f"window holds {model.n_ctx}",
                hint=f"raise it with --ctx {len(tokens)}",
            )
    batch = LlamaBatch(n_tokens=max(len(t) for t in pairs), embd=0, n_seq_max=1)
    try:
        # One pair per evaluation: a score never depends on which pairs share a batch.
        return [
            Ranked(i, _score(model, batch, tokens), len(tokens)) for i, tokens in enumerate(pairs)
        ]
    finally:
        batch.close()  # type: ignore[no-untyped-call]


def _score(model: Model, batch: LlamaBatch, tokens: list[int]) -> float:
    batch.reset()  # type: ignore[no-untyped-call]
    batch.add_sequence(tokens, 0, True)
    model.kv.evaluate_alone(batch)
    return float(llama_cpp.llama_get_embeddings_seq(model.llama.ctx, 0)[0])


def sorted_by_score(ranked: Sequence[Ranked], top_n: int | None = None) -> list[Ranked]:
    """Most relevant first; equal scores keep the documents' order."""
    ordered = sorted(ranked, key=lambda r: -r.score)
    return ordered if top_n is None else ordered[:top_n]
