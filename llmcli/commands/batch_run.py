"""The --batch loop of `llmcli run`: one model load, one JSON line per input, in order."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from llmcli.batch import BatchItem, item_sampling, read_items
from llmcli.commands.prompt_input import combine
from llmcli.engine.types import Decoding, GenerationResult, Sampling
from llmcli.errors import BatchItemsFailedError, LlmcliError
from llmcli.ui import console
from llmcli.ui.batch_view import batch_progress

if TYPE_CHECKING:
    from llmcli.commands._prompting import PromptBuilder
    from llmcli.commands.structured import OutputFormat
    from llmcli.engine.model import Model


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
) -> None:
    items = list(read_items(lines))
    failed = tokens_out = 0
    start = time.perf_counter()
    with batch_progress(len(items)) as progress:
        for item in items:
            line = _answer_item(
                llm, builder, item, sampling, fmt, decoding, prefix=prefix, system=system
            )
            cached = line.get("prompt_cache", {})
            if cached.get("saved") or cached.get("reused_tokens"):
                # Later items share the prefix through the KV cache in memory; saving
                # each long prompt to disk too would only fill the cache folder.
                decoding = dataclasses.replace(decoding, prompt_cache=None)
            console.emit_json(line)
            failed += line["error"] is not None
            tokens_out += line.get("usage", {}).get("completion_tokens", 0)
            progress.advance(failed=line["error"] is not None)
    if stats:
        elapsed = time.perf_counter() - start
        console.info(
            f"{len(items)} items, {failed} failed, {tokens_out} tokens generated in "
            f"{elapsed:.1f} s ({tokens_out / elapsed if elapsed else 0:.1f} tok/s), "
            f"model loaded once in {llm.load_s:.2f} s"
        )
    if failed:
        raise BatchItemsFailedError(f"{failed} of {len(items)} batch items failed")


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
) -> dict[str, Any]:
    line: dict[str, Any] = {"index": item.index}
    if item.id is not None:
        line["id"] = item.id
    if item.error is not None:
        line["error"] = item.error
        return line
    result = GenerationResult()
    try:
        tokens = builder.tokens(combine(prefix, item.prompt), item.system or system)
        for _ in llm.stream_parts(tokens, item_sampling(base, item), result, decoding):
            pass
    except LlmcliError as exc:
        line["error"] = str(exc)
        return line
    line.update(
        text=result.text,
        reasoning=result.reasoning,
        finish_reason=result.finish_reason,
        seed=result.seed,
        usage=result.usage(),
        timings=result.timings(),
        prompt_cache={
            "reused_tokens": result.prompt_cache_tokens,
            "saved": result.prompt_cache_saved,
        },
        lookup={"drafted_tokens": result.draft_tokens, "accepted_tokens": result.accepted_tokens},
        error=fmt.problem_with(result.text) if fmt else None,
    )
    return line
