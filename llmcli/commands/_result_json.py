"""A finished generation as JSON: the fields `run --json` prints and each `--batch` line
carries, declared once so the two cannot drift apart."""

from __future__ import annotations

from typing import Any

from llmcli.engine.types import GenerationResult


def result_json(result: GenerationResult) -> dict[str, Any]:
    return {
        "text": result.text,
        "reasoning": result.reasoning,
        "finish_reason": result.finish_reason,
        "seed": result.seed,
        "usage": result.usage(),
        # Prompt positions of attached images' (or audio's) embeddings, within prompt_tokens.
        "image_tokens": result.image_tokens,
        "timings": result.timings(),
        "prompt_cache": {
            "reused_tokens": result.prompt_cache_tokens,
            "saved": result.prompt_cache_saved,
        },
        "lookup": {
            "drafted_tokens": result.draft_tokens,
            "accepted_tokens": result.accepted_tokens,
        },
    }
