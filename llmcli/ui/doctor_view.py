"""`llmcli doctor` on stdout: a two-column table on a terminal, `key: value` lines when
piped (grep-able; `--json` is for programs)."""

from __future__ import annotations

from typing import Any

from llmcli import terminal
from llmcli.humanize import format_bytes
from llmcli.ui import console


def rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    engine, threads, cache, hub, cfg = (
        report["engine"],
        report["threads"],
        report["cache"],
        report["hub"],
        report["config"],
    )
    out = [
        ("llmcli", report["llmcli"]),
        ("llama-cpp-python", engine["llama_cpp_python"] or f"not usable: {engine['error']}"),
    ]
    for name, features in engine["backends"].items():
        out.append((f"backend {name}", " ".join(features) or "-"))
    if engine["gpu_offload"]:
        out.append(("GPU offload", "yes: " + ", ".join(engine.get("gpu_devices") or ["GPU"])))
        for gpu in engine.get("gpu_memory") or []:
            if gpu["free_bytes"] is not None and gpu["total_bytes"] is not None:
                free, total = format_bytes(gpu["free_bytes"]), format_bytes(gpu["total_bytes"])
                out.append((f"  {gpu['name']}", f"{free} free of {total}"))
    else:
        out.append(("GPU offload", "no: this build runs on the CPU only"))
        out.extend(("  to rebuild", cmd) for cmd in report["gpu_install"])
    if engine.get("rpc"):
        out.append(("RPC", "yes: `llmcli worker` and --rpc split models across machines"))
    else:
        out.append(("RPC", "no: this build cannot split models across machines"))
        out.extend(("  to rebuild", cmd) for cmd in report.get("rpc_install", []))
    out.append(("threads", f"{threads['default']} ({threads['reason']})"))
    out.extend(_engine_setup_rows(report["engine_setup"]))
    out.extend(_engine_flag_rows(report["engine_flags"], report["memory"]))
    free = cache["free_bytes"]
    out.append(("cache", cache["path"]))
    out.append(
        (
            "  size",
            f"{format_bytes(cache['size_bytes'])} in {cache['models']} model(s), "
            + (f"{format_bytes(free)} free" if free is not None else "free space unknown"),
        )
    )
    out.append(("offline", "yes (HF_HUB_OFFLINE)" if hub["offline"] else "no"))
    out.append(("endpoint", hub["endpoint"]))
    out.append(("token", f"yes ({hub['token_source']})" if hub["token"] else "no"))
    if not cfg["exists"]:
        state = "not found (defaults in use)"
    elif cfg["valid"]:
        state = "ok" + (f", {len(cfg['warnings'])} warning(s)" if cfg["warnings"] else "")
    else:
        state = f"does not load: {cfg['error']}"
    out.append(("config", f"{cfg['path']}: {state}"))
    out.append(("python", report["python"]))
    out.append(("platform", report["platform"]))
    return out


def _engine_flag_rows(flags: dict[str, Any], memory: dict[str, Any]) -> list[tuple[str, str]]:
    k, v = flags["cache_type_k"], flags["cache_type_v"]
    lora = f"{flags['lora']} at {flags['lora_scale']:g}" if flags["lora"] else "none"
    if flags["yarn"]:
        rope = f"YaRN x{flags['rope_scale']:g}" if flags["rope_scale"] else "YaRN, by --ctx"
    else:
        rope = f"linear x{flags['rope_scale']:g}" if flags["rope_scale"] else "the model's"
    source = " (config file)" if flags["from_config"] else ""
    out = [
        ("KV cache", f"keys {k}, values {v}{source}"),
        ("LoRA", lora),
        ("RoPE scaling", rope),
    ]
    out.extend(("  problem", problem) for problem in flags["problems"])
    available = memory["available_bytes"]
    shown = format_bytes(available) if available is not None else "unknown"
    out.append(("memory", f"{shown} available ({memory['source']})"))
    return out


def _engine_setup_rows(setup: dict[str, Any]) -> list[tuple[str, str]]:
    out = [("CPU", f"{setup['cpu']} ({' '.join(setup['cpu_features']) or 'no AVX'})")]
    if setup["pinned"]:
        out.append(("engine setup", f"{setup['pinned']} (LLMCLI_ENGINE_SETUP)"))
    elif not setup["models"]:
        out.append(("engine setup", "measured for each model when first loaded"))
    for model in setup["models"]:
        out.append(("engine setup", f"{model['setup']} for {model['model']}"))
        out.append(("  why", model["reason"]))
    for crash in setup["crashes"]:
        out.append(("  crashed", crash))
    out.append(("  measurements", f"{setup['file']} (`llmcli doctor --recheck` measures again)"))
    return out


def render(report: dict[str, Any]) -> None:
    lines = rows(report)
    if not terminal.current().stdout_rich:
        width = max(len(k.strip()) for k, _ in lines)
        text = "\n".join(f"{k.strip() + ':':<{width + 1}} {v}" for k, v in lines)
        console.emit_text(text)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, value in lines:
        warn = (key == "GPU offload" and not value.startswith("yes")) or "does not load" in value
        # Text, not markup: paths and commands may contain brackets.
        table.add_row(Text(key), Text(value, style="yellow" if warn else ""))
    console.stdout_console().print(table)
