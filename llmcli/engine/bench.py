"""Raw engine speed, measured the way llama.cpp's llama-bench does it.

pp: evaluate N random tokens in batches (prompt processing); tg: evaluate N tokens one at a
time (text generation, without sampling). Each test runs once to warm up, then `reps`
times on an empty KV cache; results are tokens per second, mean and standard deviation.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import llama_cpp

from llmcli.engine import crash_guard
from llmcli.engine.model import Model


@dataclass(frozen=True)
class BenchResult:
    test: str  # "pp512", "tg128"
    n_prompt: int
    n_gen: int
    threads: int
    samples_tps: list[float] = field(default_factory=list)

    @property
    def mean_tps(self) -> float:
        return statistics.fmean(self.samples_tps)

    @property
    def stddev_tps(self) -> float:
        return statistics.stdev(self.samples_tps) if len(self.samples_tps) > 1 else 0.0


def _clear(model: Model) -> None:
    llama = model.llama
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llama.ctx), False)
    llama.reset()  # type: ignore[no-untyped-call]


def _prompt_pass(model: Model, n: int, rng: random.Random) -> float:
    llama = model.llama
    n_vocab = llama.n_vocab()
    tokens = [rng.randrange(n_vocab) for _ in range(n)]
    if llama_cpp.llama_vocab_get_add_bos(model.vocab):
        tokens[0] = llama.token_bos()
    _clear(model)
    start = time.perf_counter()
    with crash_guard.evaluating():
        llama.eval(tokens)
    llama_cpp.llama_synchronize(llama.ctx)
    return n / (time.perf_counter() - start)


def _gen_pass(model: Model, n: int, rng: random.Random) -> float:
    llama = model.llama
    n_vocab = llama.n_vocab()
    token = llama.token_bos() if llama_cpp.llama_vocab_get_add_bos(model.vocab) else 0
    _clear(model)
    start = time.perf_counter()
    for _ in range(n):
        with crash_guard.evaluating():
            llama.eval([token])
        llama_cpp.llama_synchronize(llama.ctx)
        token = rng.randrange(n_vocab)
    return n / (time.perf_counter() - start)


def run_bench(
    model: Model,
    *,
    n_prompt: int,
    n_gen: int,
    reps: int,
    threads: Sequence[int],
    on_result: Callable[[BenchResult], None] | None = None,
) -> list[BenchResult]:
    rng = random.Random(0)
    results: list[BenchResult] = []
    for n_threads in threads:
        llama_cpp.llama_set_n_threads(model.llama.ctx, n_threads, n_threads)
        tests: list[tuple[str, Callable[[Model, int, random.Random], float], int]] = []
        if n_prompt > 0:
            tests.append((f"pp{n_prompt}", _prompt_pass, n_prompt))
        if n_gen > 0:
            tests.append((f"tg{n_gen}", _gen_pass, n_gen))
        for name, run_pass, n in tests:
            run_pass(model, n, rng)  # warm-up: first touches of the weights and caches
            samples = [run_pass(model, n, rng) for _ in range(reps)]
            result = BenchResult(
                test=name,
                n_prompt=n_prompt if name.startswith("pp") else 0,
                n_gen=n_gen if name.startswith("tg") else 0,
                threads=n_threads,
                samples_tps=samples,
            )
            results.append(result)
            if on_result is not None:
                on_result(result)
    llama_cpp.llama_set_n_threads(model.llama.ctx, model.threads, model.threads)
    _clear(model)
    return results
