"""`llmcli fit`: the memory plan as a short table and a verdict line, on stdout."""

from __future__ import annotations

from llmcli.humanize import format_bytes
from llmcli.memory_plan import MemoryPlan
from llmcli.ui import console
from llmcli.ui.tables import render_table


def plan_rows(plan: MemoryPlan) -> list[tuple[str, str]]:
    trained = f", trained on {plan.trained_ctx:,}" if plan.trained_ctx else ""
    available = (
        format_bytes(plan.available_bytes) if plan.available_bytes is not None else "unknown"
    )
    kinds = (
        plan.cache_type
        if plan.cache_type == plan.cache_type_v
        else f"K {plan.cache_type}, V {plan.cache_type_v}"
    )
    return [
        ("weights", format_bytes(plan.weights_bytes)),
        (
            f"KV cache ({kinds}, {plan.ctx:,} tokens{trained})",
            format_bytes(plan.kv_bytes),
        ),
        ("compute buffer (estimate)", format_bytes(plan.compute_bytes)),
        ("total", format_bytes(plan.total_bytes)),
        ("available", available),
    ]


def verdict(plan: MemoryPlan) -> str:
    if plan.fits is None:
        return "verdict unknown: this system does not say how much memory is available"
    if plan.fits:
        line = (
            f"fits: {format_bytes(plan.total_bytes)} of {format_bytes(plan.available_bytes or 0)}"
        )
        if plan.max_ctx is not None and plan.max_ctx > plan.ctx:
            line += f"; up to --ctx {plan.max_ctx} fits"
        return line
    line = (
        f"does not fit: needs {format_bytes(plan.total_bytes)}, "
        f"{format_bytes(plan.available_bytes or 0)} available"
    )
    for change in plan.changes:
        needs = f" (needs {format_bytes(change.total_bytes)})" if change.total_bytes else ""
        still = "" if change.fits else ", still too much"
        line += f"\n  try {change.what}{needs}{still}"
    return line


def render_plan(name: str, plan: MemoryPlan) -> None:
    console.emit_text(name)
    render_table(("memory", "size"), plan_rows(plan), numeric=(1,))
    console.emit_text(verdict(plan))
