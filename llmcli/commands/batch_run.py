"""The --batch loop of `llmcli run`: one model load, one JSON line per input, in order."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from llmcli.batch import BatchItem, item_sampling, read_items
from llmcli.commands._result_json import result_json
from llmcli.commands.prompt_input import combine
from llmcli.engine.types import Decoding, GenerationResult, Sampling
from llmcli.errors import BatchItemsFailedError, LlmcliError
from llmcli.ui import console
from llmcli.ui.batch_view import batch_progress

if TYPE_CHECKING:
    from llmcli.commands.structured import OutputFormat
    from llmcli.engine.model import Model
    from llmcli.engine.scheduler import Chunk, Job
    from llmcli.prompting import PromptBuilder
    from llmcli.remember import AnswerLog


def run_batch(
    llm: Model,
    builder: PromptBuilder,
    lines: list[str],
    sampling: Sampling,
    fmt: OutputFormat | None,
    *,
    prefix: str | None,
    system: str | None,
    stats: bool,
    decoding: Decoding,
    log: AnswerLog | None = None,
) -> None:
    items = list(read_items(lines))
    tally = _Tally(len(items))
    with batch_progress(len(items)) as progress:
        for item in items:
            line = _answer_item(
                llm, builder, item, sampling, fmt, decoding, prefix=prefix, system=system, log=log
            )
            cached = line.get("prompt_cache", {})
            if cached.get("saved") or cached.get("reused_tokens"):
                # Later items share the prefix through the KV cache in memory; saving
                # each long prompt to disk too would only fill the cache folder.
                decoding = dataclasses.replace(decoding, prompt_cache=None)
            tally.emit(line, progress)
    tally.finish(stats, f"model loaded once in {llm.load_s:.2f} s")


def run_batch_parallel(
    llm: Model,
    builder: PromptBuilder,
    lines: list[str],
    sampling: Sampling,
    fmt: OutputFormat | None,
    *,
    prefix: str | None,
    system: str | None,
    stats: bool,
    parallel: int,
    ctx: int,
    log: AnswerLog | None = None,
) -> None:
    """The same lines as `run_batch`, in input order, from up to `parallel` prompts
    decoded together (llmcli serve's scheduler)."""
    import threading

    from llmcli.engine.scheduler import Job, Scheduler

    items = list(read_items(lines))
    lines_out: dict[int, dict[str, Any]] = {}
    done = threading.Condition()
    tally = _Tally(len(items))

    def collect(slot: int, item: BatchItem, job_ref: list[Job]) -> Any:
        said: dict[str, list[str]] = {"answer": [], "thinking": []}

        def emit(chunk: Chunk) -> None:
            for kind, piece in chunk.parts:
                said[kind].append(piece)
            if chunk.finish_reason is None:
                return
            job = job_ref[0]
            text, thought = "".join(said["answer"]), "".join(said["thinking"]).strip()
            result = _result_of_job(job, text, chunk, thought)
            line = _line_from_job(item, result, chunk, fmt)
            if log is not None and chunk.error is None:
                log.add(
                    prompt=combine(prefix, item.prompt),
                    system=item.system or system,
                    result=result,
                    sampling=job.sampling,
                    started=job.submitted_at,
                    conversation_id=log.new_conversation(),
                )
            with done:
                lines_out[slot] = line
                done.notify()

        return emit

    jobs: list[tuple[int, Job]] = []
    for slot, item in enumerate(items):
        if item.error is not None:
            lines_out[slot] = _answer_item(
                llm, builder, item, sampling, fmt, Decoding(), prefix=prefix, system=system
            )
            continue
        ref: list[Job] = []
        try:
            tokens = builder.tokens(combine(prefix, item.prompt), item.system or system)
        except LlmcliError as exc:
            lines_out[slot] = _error_line(item, str(exc))
            continue
        job = Job(tokens, item_sampling(sampling, item), collect(slot, item, ref))
        ref.append(job)
        jobs.append((slot, job))
    each = _cells_needed([job for _, job in jobs], ctx)
    scheduler = Scheduler(llm, parallel=parallel, ctx_per_sequence=each, max_waiting=len(items))
    try:
        for slot, job in jobs:
            try:
                scheduler.submit(job)
            except LlmcliError as exc:
                lines_out[slot] = _error_line(items[slot], str(exc))
        with batch_progress(len(items)) as progress:
            for slot in range(len(items)):
                with done:
                    done.wait_for(lambda s=slot: s in lines_out)  # type: ignore[misc]
                tally.emit(lines_out.pop(slot), progress)
    finally:
        scheduler.close()
    tally.finish(stats, f"{parallel} at once")


def _cells_needed(jobs: list[Job], ctx: int) -> int:
    """Each sequence's share of the KV cache: `ctx`, or less when every line's prompt and
    token limit fit in less. The cache is allocated and cleared whole before the first
    token, and eight sequences of 4096 take longer to set up than short lines take to
    answer; a smaller cache holds the same positions, so the answers are the same."""
    from llmcli.memory_plan import kv_cells

    limits = [job.sampling.max_tokens for job in jobs]
    if not jobs or any(n is None or n < 0 for n in limits):
        return ctx
    longest = max(len(job.prompt) + (n or 0) for job, n in zip(jobs, limits, strict=True))
    return min(ctx, kv_cells(longest + 1))


class _Tally:
    """Writes a batch's lines and counts them, for the stats line and the exit code."""

    def __init__(self, items: int) -> None:
        self.items = items
        self.failed = self.tokens_out = 0
        self.start = time.perf_counter()

    def emit(self, line: dict[str, Any], progress: Any) -> None:
        console.emit_json(line)
        self.failed += line["error"] is not None
        self.tokens_out += line.get("usage", {}).get("completion_tokens", 0)
        progress.advance(failed=line["error"] is not None)

    def finish(self, stats: bool, how: str) -> None:
        if stats:
            elapsed = time.perf_counter() - self.start
            rate = self.tokens_out / elapsed if elapsed else 0
            console.info(
                f"{self.items} items, {self.failed} failed, {self.tokens_out} tokens "
                f"generated in {elapsed:.1f} s ({rate:.1f} tok/s), {how}"
            )
        if self.failed:
            raise BatchItemsFailedError(f"{self.failed} of {self.items} batch items failed")


def _error_line(item: BatchItem, error: str) -> dict[str, Any]:
    line: dict[str, Any] = {"index": item.index}
    if item.id is not None:
        line["id"] = item.id
    line["error"] = error
    return line


def _result_of_job(job: Job, text: str, last: Chunk, thought: str) -> GenerationResult:
    return GenerationResult(
        text=text,
        reasoning=thought,
        finish_reason=last.finish_reason or "stop",
        prompt_tokens=job.prompt_tokens,
        prompt_tokens_evaluated=job.prompt_tokens - job.cached_tokens,
        completion_tokens=job.completion_tokens,
        reasoning_tokens=job.reasoning_tokens,
        seed=job.seed,
        ttft_s=(job.first_token_at or job.submitted_at) - job.submitted_at,
    )


def _line_from_job(
    item: BatchItem, result: GenerationResult, last: Chunk, fmt: OutputFormat | None
) -> dict[str, Any]:
    if last.error is not None:
        return _error_line(item, f"the engine failed: {last.error}")
    line = _error_line(item, "")
    line.update(result_json(result), error=_format_problem(fmt, result))
    return line


def _answer_item(
    llm: Model,
    builder: PromptBuilder,
    item: BatchItem,
    base: Sampling,
    fmt: OutputFormat | None,
    decoding: Decoding,
    *,
    prefix: str | None,
    system: str | None,
    log: AnswerLog | None = None,
) -> dict[str, Any]:
    line: dict[str, Any] = {"index": item.index}
    if item.id is not None:
        line["id"] = item.id
    if item.error is not None:
        line["error"] = item.error
        return line
    started = time.perf_counter()
    prompt, item_system = combine(prefix, item.prompt), item.system or system
    sampling = item_sampling(base, item)
    try:
        tokens, preamble = builder.prompt(prompt, item_system)
        # Evaluated as `run` evaluates the prompt alone, so the line gives its answer.
        decoding = dataclasses.replace(decoding, preamble=preamble)
        result = llm.generate(tokens, sampling, decoding).complete()
    except LlmcliError as exc:
        line["error"] = str(exc)
        return line
    if log is not None:
        log.add(
            prompt=prompt,
            system=item_system,
            result=result,
            sampling=sampling,
            started=started,
            conversation_id=log.new_conversation(),
        )
    line.update(result_json(result), error=_format_problem(fmt, result))
    return line


def _format_problem(fmt: OutputFormat | None, result: GenerationResult) -> str | None:
    if fmt is None:
        return None
    cut = result.finish_reason == "length"
    return fmt.problem_with(result.text, cut_off_at=result.completion_tokens if cut else None)
