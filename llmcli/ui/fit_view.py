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
    rows = [
        ("weights", format_bytes(plan.weights_bytes)),
        (
            f"KV cache ({kinds}, {plan.ctx:,} tokens{trained})",
            format_bytes(plan.kv_bytes),
        ),
        ("compute buffer (estimate)", format_bytes(plan.compute_bytes)),
        ("total", format_bytes(plan.total_bytes)),
    ]
    if not plan.model_layers:
        return [*rows, ("available", available)]
    gpu_free = (
        format_bytes(plan.gpu_available_bytes)
        if plan.gpu_available_bytes is not None
        else "unknown"
    )
    where = f"{plan.offloaded_layers} of {plan.model_layers} layers"
    return [
        *rows,
        (f"on the GPU ({where})", format_bytes(plan.gpu_bytes)),
        ("  of which weights", format_bytes(plan.gpu_weights_bytes)),
        ("  of which KV cache", format_bytes(plan.gpu_kv_bytes)),
        ("GPU memory free", gpu_free),
        ("in RAM", format_bytes(plan.ram_bytes)),
        ("RAM available", available),
    ]


def needed(plan: MemoryPlan) -> str:
    """What the plan needs: one size, or RAM and GPU memory apart where layers are
    offloaded."""
    if not plan.gpu_bytes:
        return format_bytes(plan.total_bytes)
    return f"{format_bytes(plan.ram_bytes)} of RAM and {format_bytes(plan.gpu_bytes)} of GPU memory"


def free_memory(plan: MemoryPlan) -> str:
    """What there is for it, as a clause: "8.0 GB is available"."""
    ram = format_bytes(plan.available_bytes or 0)
    if not plan.gpu_bytes or plan.gpu_available_bytes is None:
        return f"{ram} is available"
    gpu = format_bytes(plan.gpu_available_bytes)
    return f"{ram} of RAM and {gpu} of GPU memory are free"


def needs_and_free(plan: MemoryPlan) -> str:
    if not plan.gpu_bytes:
        return f"needs {needed(plan)}, {format_bytes(plan.available_bytes or 0)} available"
    return f"needs {needed(plan)}; {free_memory(plan)}"


def verdict(plan: MemoryPlan) -> str:
    if plan.fits is None:
        return "verdict unknown: this system does not say how much memory is available"
    if plan.fits and plan.gpu_bytes:
        line = (
            f"fits: {format_bytes(plan.gpu_bytes)} of "
            f"{format_bytes(plan.gpu_available_bytes or 0)} on the GPU, "
            f"{format_bytes(plan.ram_bytes)} of {format_bytes(plan.available_bytes or 0)} in RAM"
        )
        if plan.max_ctx is not None and plan.max_ctx > plan.ctx:
            line += f"; up to --ctx {plan.max_ctx} fits"
        return line
    if plan.fits:
        line = (
            f"fits: {format_bytes(plan.total_bytes)} of {format_bytes(plan.available_bytes or 0)}"
        )
        if plan.max_ctx is not None and plan.max_ctx > plan.ctx:
            line += f"; up to --ctx {plan.max_ctx} fits"
        return line
    line = f"does not fit: {needs_and_free(plan)}"
    for change in plan.changes:
        needs = f" (needs {format_bytes(change.total_bytes)})" if change.total_bytes else ""
        still = "" if change.fits else ", still too much"
        line += f"\n  try {change.what}{needs}{still}"
    return line


def render_plan(name: str, plan: MemoryPlan) -> None:
    console.emit_text(name)
    render_table(("memory", "size"), plan_rows(plan), numeric=(1,))
    console.emit_text(verdict(plan))
