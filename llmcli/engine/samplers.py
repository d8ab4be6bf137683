"""The sampler chain of one answer, built the way the bindings' own generate() builds
it, so that the Scheduler's answers and Model.generate's lazy-grammar answers pick the
tokens a plain `run` would."""

from __future__ import annotations

import llama_cpp
from llama_cpp._internals import LlamaSampler
from llama_cpp.llama_grammar import LlamaGrammar

from llmcli.engine.llama_state import bindings_model
from llmcli.engine.types import Sampling


def make_sampler(llama: llama_cpp.Llama, sampling: Sampling, seed: int) -> LlamaSampler:
    """Penalties, then the grammar (lazy when `sampling.grammar_trigger` is set: it
    applies once the text generated so far matches the trigger), then greedy choice or
    top-k, top-p, min-p, temperature and a seeded draw."""
    sampler = LlamaSampler()  # type: ignore[no-untyped-call]
    if sampling.repeat_penalty != 1.0:
        sampler.add_penalties(llama.n_vocab(), 64, sampling.repeat_penalty, 0.0, 0.0)
    if sampling.grammar is not None:
        grammar = LlamaGrammar.from_string(sampling.grammar, verbose=False)
        if sampling.grammar_trigger is not None:
            sampler.add_grammar_lazy_patterns(
                bindings_model(llama), grammar, [sampling.grammar_trigger], []
            )
        else:
            sampler.add_grammar(bindings_model(llama), grammar)
    if sampling.temperature <= 0:
        sampler.add_greedy()  # type: ignore[no-untyped-call]
        return sampler
    sampler.add_top_k(sampling.top_k)
    sampler.add_top_p(sampling.top_p, 1)
    sampler.add_min_p(sampling.min_p, 1)
    sampler.add_temp(sampling.temperature)
    sampler.add_dist(seed)
    return sampler
