"""Choosing the engine setup for a model: kept verdict, or probes in child processes.

A setup that faults (SIGILL, SIGSEGV) kills only its probe, never the user's run. Among
the setups that survive, the one expected to finish a typical job soonest wins; llama.cpp's
own default keeps its place unless another is clearly faster, so noise in a short probe
does not flip the choice.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from llmcli import terminal
from llmcli.errors import EngineCrashError
from llmcli.tuning.setups import NO_REPACK, REPACK, REPACK_SINGLE, SETUPS, EngineSetup
from llmcli.tuning.threads import quiet as machine_is_quiet
from llmcli.tuning.verdicts import (
    CRASHED_BEFORE,
    ProbeResult,
    Verdict,
    crashed_setups,
    load_verdict,
    save_verdict,
)

Probe = Callable[[EngineSetup], ProbeResult]
Notify = Callable[[str], None]

# The job a setup is judged on: a prompt of this many tokens, then an answer of that many
# (embeddings: the prompt only).
JOB_PROMPT_TOKENS = 512
JOB_ANSWER_TOKENS = 256
# Another setup must be this much faster to replace llama.cpp's default.
SWITCH_MARGIN = 0.10

REINSTALL = (
    'CMAKE_ARGS="-DGGML_RPC=on" pip install --force-reinstall --no-cache-dir llama-cpp-python'
)


@dataclass(frozen=True)
class Decision:
    setup: EngineSetup
    verdict: Verdict | None  # None when the setup was pinned
    measured: bool = False  # probes ran for this decision


def describe_failure(failure: str | None) -> str:
    """A clause for the notice: "its probe died with SIGILL, illegal instruction"."""
    if failure == CRASHED_BEFORE:
        return f"it {failure}"
    if failure and failure.startswith("SIG"):
        try:
            text = signal.strsignal(signal.Signals[failure]) or ""
        except (KeyError, ValueError):
            text = ""
        return f"its probe died with {failure}" + (f", {text.lower()}" if text else "")
    return f"its probe failed: {failure or 'unknown error'}"


def job_seconds(result: ProbeResult, *, embedding: bool) -> float:
    if result.prompt_tps <= 0:
        return float("inf")
    seconds = JOB_PROMPT_TOKENS / result.prompt_tps
    if not embedding:
        seconds += JOB_ANSWER_TOKENS / result.gen_tps if result.gen_tps > 0 else float("inf")
    return seconds


def pick(results: Sequence[ProbeResult], *, embedding: bool) -> ProbeResult | None:
    """The fastest result that survived; the first one listed (the default) unless another
    beats it by SWITCH_MARGIN."""
    ok = [r for r in results if r.ok]
    if not ok:
        return None
    best = min(ok, key=lambda r: job_seconds(r, embedding=embedding))
    first = ok[0]
    if job_seconds(best, embedding=embedding) < job_seconds(first, embedding=embedding) * (
        1 - SWITCH_MARGIN
    ):
        return best
    return first


def _speeds(result: ProbeResult) -> str:
    gen = f", generation {result.gen_tps:.0f} tok/s" if result.gen_tps > 0 else ""
    return f"prompt {result.prompt_tps:.0f} tok/s{gen}"


def decide(
    model: str,
    *,
    probe: Probe,
    threads: int,
    embedding: bool = False,
    pinned: EngineSetup | None = None,
    notify: Notify | None = None,
    model_name: str = "this model",
    quiet: Callable[[], bool] = machine_is_quiet,
) -> Decision:
    """The setup to load `model` (an identity.model_key) with.

    Batch costs are kept only from a probe that ran while no other process kept a core
    busy; until then the reference table serves, and a later quiet load measures them."""
    if pinned is not None:
        return Decision(pinned, None)
    crashed = crashed_setups(model)
    kept = load_verdict(model)
    if kept is not None and kept.setup in SETUPS and kept.setup not in crashed:
        if not embedding and not kept.batch_cost and quiet():
            kept = _measure_batch_costs(kept, probe)
        return Decision(SETUPS[kept.setup], kept)
    calm = quiet()

    if notify is not None and terminal.current().stderr_isatty:
        # Progress, not news: a pipeline's stderr hears only about a fallback.
        notify(f"checking how llama.cpp runs {model_name} on this CPU (once)...")
    results: list[ProbeResult] = []
    for setup in (REPACK, NO_REPACK):
        if setup.name in crashed:
            results.append(ProbeResult(setup.name, False, CRASHED_BEFORE))
            continue
        if setup is NO_REPACK and results[0].ok and not results[0].repacked:
            # Nothing of this model is repacked on this CPU: the same setup twice.
            break
        result = probe(setup)
        if not result.ok and not result.faulted:
            # The model itself does not load (truncated, unknown architecture): loading it
            # for real reports why, in the words the user needs. Nothing is learnt.
            return Decision(REPACK, None)
        results.append(result)
    repack = results[0]
    if not repack.ok and not embedding and REPACK_SINGLE.name not in crashed:
        # Single-token steps keep the repacked weights (often the fastest decoding)
        # while batches never reach the matrix kernels that faulted. Embedding needs
        # whole texts in one step, so it cannot use this.
        results.append(probe(REPACK_SINGLE))

    chosen = pick(results, embedding=embedding)
    failed = [r for r in results if not r.ok]
    if chosen is None:
        detail = "; ".join(f"{r.setup}: {describe_failure(r.failure)}" for r in failed)
        raise EngineCrashError(
            f"the llama.cpp engine fails on this CPU in every setup llmcli knows ({detail})",
            hint=f"reinstall it built for this machine: {REINSTALL}",
        )
    setup = SETUPS[chosen.setup]
    if failed:
        why = "; ".join(f"{r.setup}: {describe_failure(r.failure)}" for r in failed)
        reason = f"{why}; {setup.name} is the fastest setup that works ({_speeds(chosen)})"
        if notify is not None:
            which = " and ".join(f"{r.setup} ({describe_failure(r.failure)})" for r in failed)
            notify(
                f"this llama.cpp build fails on this CPU in setup {which}; using "
                f"{setup.name} instead ({setup.summary}); `llmcli doctor` has the details"
            )
    elif len(results) == 1:
        reason = f"nothing in this model is repacked on this CPU ({_speeds(chosen)})"
    elif chosen is results[0]:
        others = "; ".join(f"{r.setup}: {_speeds(r)}" for r in results[1:])
        reason = (
            "llama.cpp's default works and no other setup is clearly faster "
            f"({_speeds(chosen)}; {others})"
        )
    else:
        reason = (
            f"{setup.name} is faster here than llama.cpp's default "
            f"({_speeds(chosen)}, against {_speeds(results[0])})"
        )
    if not calm:
        results = [replace(r, batch_cost={}) for r in results]
    verdict = Verdict(
        model=model, setup=setup.name, reason=reason, threads=threads, probes=tuple(results)
    )
    save_verdict(verdict)
    return Decision(setup, verdict, measured=True)


# Kept in place of a table when a second, quiet probe could not measure one either: the
# reference table serves from then on, and nothing is probed again.
GAVE_UP = {1: 1.0}


def _measure_batch_costs(kept: Verdict, probe: Probe) -> Verdict:
    """The kept verdict with batch costs from a new probe of its setup. Tried once: an
    undisturbed probe gives its table, any other outcome keeps the reference for good."""
    result = probe(SETUPS[kept.setup])
    if not result.ok:
        return kept
    if not result.batch_cost:
        result = replace(result, batch_cost=GAVE_UP)
    probes = tuple(result if p.setup == kept.setup else p for p in kept.probes)
    updated = replace(kept, probes=probes)
    save_verdict(updated)
    return updated
