"""The probe child: load a model in one engine setup, run it, report speeds as JSON.

Run as `python -m llmcli.engine.calibrate SPEC` by `llmcli.tuning.child_probe`. If the setup
faults on this CPU, this process dies and the parent learns it from the exit status.
It exercises what real runs do: a prompt batch, single-token steps, and batches of every
size prompt-lookup decoding drafts. Its timings give the parent the speeds to compare
setups by, and the machine's own batch costs for the lookup planner.

LLMCLI_PROBE_FAULT=SETUP=SIGNAL (e.g. `repack=SIGILL`) makes the probe of that setup die
by that signal where the first batch would run: how the fallback is tested on CPUs that
do not fault.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import llama_cpp

from llmcli.engine.log import listen
from llmcli.engine.lookup import BATCH_SIZES, plausible
from llmcli.engine.model import Model
from llmcli.engine.types import LoadOptions
from llmcli.tuning.child_probe import ProbeSpec
from llmcli.tuning.setups import setup_named

ENV_FAULT = "LLMCLI_PROBE_FAULT"
PROMPT_TOKENS = 128
# Each measurement repeats until it has taken this long (or has enough samples), so a
# small model is measured precisely and a big one quickly.
PHASE_BUDGET_S = 0.4
MAX_REPS = 5
MIN_ROUNDS = 2
MAX_ROUNDS = 5
ROUNDS_BUDGET_S = 0.8
# Single steps of one probe that differ by more than this were disturbed.
STEADY_SPREAD = 1.3
# Weight buffers that hold repacked weights (ggml-cpu's extra buffer types).
REPACKED_BUFFERS = ("CPU_REPACK", "AMX", "KLEIDIAI", "SPACEMIT")
_BUFFER_LINE = re.compile(r"(\S+) model buffer size\s*=\s*([0-9.]+) MiB")


def _injected_fault(setup: str) -> None:
    for item in os.environ.get(ENV_FAULT, "").split(","):
        name, _, sig = item.partition("=")
        if name.strip() == setup and sig.strip():
            signal.signal(signal.Signals[sig.strip()], signal.SIG_DFL)
            os.kill(os.getpid(), signal.Signals[sig.strip()])


def _repeat(run: Any, budget: float = PHASE_BUDGET_S) -> list[float]:
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < MAX_REPS and (len(samples) < 2 or time.perf_counter() - start < budget):
        samples.append(run())
    return samples


def measure_generative(model: Model) -> dict[str, Any]:
    kv = model.kv
    rng = random.Random(0)
    n_vocab = model.llama.n_vocab()
    n_prompt = min(PROMPT_TOKENS, model.n_ctx // 4)
    tokens = [rng.randrange(n_vocab) for _ in range(n_prompt + max(BATCH_SIZES))]

    kv.rewind(0)
    kv.evaluate(tokens[:1])  # first touch of every weight: not part of any timing
    kv.rewind(0)

    def prompt_pass() -> float:
        kv.rewind(0)
        start = time.perf_counter()
        kv.evaluate(tokens[:n_prompt])
        return n_prompt / (time.perf_counter() - start)

    # Best of a few: another process can only slow a pass down, never speed it up.
    prompt_tps = max(_repeat(prompt_pass))

    def decode(size: int) -> float:
        kv.stage(tokens[n_prompt : n_prompt + size])
        start = time.perf_counter()
        kv.decode_staged()
        seconds = time.perf_counter() - start
        kv.accept(0)
        return seconds

    # Rounds of every size, each timed against single steps of the same round: another
    # process slowing the machine for a moment shifts a whole round, not one ratio.
    singles: list[float] = []
    ratios: dict[int, list[float]] = {size: [] for size in BATCH_SIZES[1:]}
    start = time.perf_counter()
    while len(singles) < MIN_ROUNDS or (
        len(singles) < MAX_ROUNDS and time.perf_counter() - start < ROUNDS_BUDGET_S
    ):
        # Each time is the better of two back to back: a pause of the machine
        # lengthens one of them, rarely both, and single steps and batches alike.
        single = min(decode(1), decode(1))
        singles.append(single)
        for size in ratios:
            ratios[size].append(min(decode(size), decode(size)) / single)
    costs = {1: 1.0}
    for size, found in ratios.items():
        # A batch never costs more than its tokens one by one (noise can say otherwise),
        # nor less than a smaller batch.
        costs[size] = round(min(float(size), max(statistics.median(found), costs[max(costs)])), 3)
    gen_tps = 1.0 / min(singles)
    batched = model.setup.ubatch is None
    if max(singles) > STEADY_SPREAD * min(singles) or not plausible(costs, batched=batched):
        # Something else ran meanwhile: these ratios describe the contention, not this
        # machine, and would be kept for good. The parent measures again when quiet.
        costs = {}
    return {"prompt_tps": prompt_tps, "gen_tps": gen_tps, "batch_cost": costs}


def measure_embedding(model: Model, *, rank: bool = False) -> dict[str, Any]:
    from llmcli.engine.rerank import rerank
    from llmcli.engine.vectors import embed

    text = "The quick brown fox jumps over the lazy dog. " * 8
    n_tokens = len(model.tokenize(text))

    def run() -> None:
        # A reranker's head gives a score, not a vector: it is exercised as it is used.
        if rank:
            rerank(model, "fox", [text])
        else:
            embed(model, [text])

    run()  # warm-up

    def one() -> float:
        start = time.perf_counter()
        run()
        return n_tokens / (time.perf_counter() - start)

    return {"prompt_tps": max(_repeat(one)), "gen_tps": 0.0, "batch_cost": {}}


def main(argv: list[str]) -> int:
    buffers: dict[str, float] = {}

    def note_buffer(line: str) -> None:
        found = _BUFFER_LINE.search(line)
        if found:
            buffers[found[1]] = buffers.get(found[1], 0.0) + float(found[2])

    listen(note_buffer)
    spec = ProbeSpec(**json.loads(argv[1]))
    setup = setup_named(spec.setup)
    options = LoadOptions(
        path=Path(spec.path),
        n_ctx=spec.n_ctx,
        n_threads=spec.threads,
        n_gpu_layers=spec.n_gpu_layers,
        n_batch=spec.n_batch,
        flash_attn=spec.flash_attn,
        embedding=spec.embedding,
        pooling="rank"
        if spec.pooling == "rank"
        else "model"
        if spec.pooling == "model"
        else "mean",
    )
    with Model(options, setup=setup) as model:
        _injected_fault(setup.name)
        result = (
            measure_embedding(model, rank=spec.pooling == "rank")
            if spec.embedding
            else measure_generative(model)
        )
        llama_cpp.llama_synchronize(model.llama.ctx)
    result["buffers_mib"] = buffers
    result["repacked"] = any(name in REPACKED_BUFFERS for name in buffers)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
