"""The facts `llmcli doctor` reports, gathered as plain JSON-ready data (no printing).

Never reads out a secret: the Hugging Face token is reported as present or not, and
where it comes from.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmcli import __version__, config
from llmcli.engine.system_info import CUDA_INSTALL, METAL_INSTALL, RPC_INSTALL, engine_info
from llmcli.errors import ConfigError


def report() -> dict[str, Any]:
    engine = engine_info()
    settings, config_facts = _config()
    configured_threads = settings.defaults.get("threads") if settings else None
    return {
        "llmcli": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "engine": {
            "llama_cpp_python": engine.version,
            "backends": engine.backends,
            "system_info": engine.system_info,
            "gpu_offload": engine.gpu_offload,
            "gpu_devices": list(engine.gpu_devices),
            "gpu_memory": _gpu_memory() if engine.gpu_offload else [],
            "rpc": engine.rpc,
            "error": engine.error,
        },
        "gpu_install": [] if engine.gpu_offload else gpu_install_commands(),
        "rpc_install": [] if engine.rpc else [RPC_INSTALL],
        "threads": _threads(configured_threads),
        "engine_setup": engine_setup(),
        "engine_flags": engine_flags(settings.defaults if settings else {}),
        "memory": _memory(),
        "cache": _cache(),
        "hub": _hub(),
        "config": config_facts,
    }


# The engine flags and their built-in values: doctor says which the config file changes.
_ENGINE_FLAGS = ("cache_type_k", "cache_type_v", "lora", "lora_scale", "rope_scale", "yarn")


def engine_flags(configured: Mapping[str, object]) -> dict[str, Any]:
    """The KV cache types, LoRA adapter and RoPE scaling that run, chat, serve and bench
    use unless told otherwise, with what is wrong with them (a missing adapter file)."""
    from llmcli.config.options_table import BY_NAME

    flags: dict[str, Any] = {
        name: configured.get(name, BY_NAME[name].default) for name in _ENGINE_FLAGS
    }
    flags["from_config"] = [name for name in _ENGINE_FLAGS if name in configured]
    problems = []
    lora = flags["lora"]
    if isinstance(lora, str) and not Path(lora).expanduser().is_file():
        problems.append(f"lora: no such file: {lora}")
    flags["problems"] = problems
    return flags


def _memory() -> dict[str, Any]:
    from llmcli.system_memory import ENV_MEMORY, available_memory, memory_override

    override = memory_override()
    return {
        "available_bytes": override if override is not None else available_memory(),
        "source": ENV_MEMORY if override is not None else "the system",
    }


def _gpu_memory() -> list[dict[str, Any]]:
    """Each GPU's memory as its backend reports it: what `fit`, `run` and `serve` plan
    against (unless $LLMCLI_GPU_MEMORY says otherwise)."""
    from llmcli.engine.system_info import gpus

    return [
        {"name": g.name, "free_bytes": g.free, "total_bytes": g.total, "unified": g.unified}
        for g in gpus()
    ]


def _threads(configured: object) -> dict[str, Any]:
    from llmcli.tuning.threads import choose_threads

    choice = choose_threads()
    return {
        "default": int(configured) if isinstance(configured, int) else choice.threads,
        "usable_cores": choice.usable_cores,
        "busy_cores": choice.busy_cores,
        "from_config": configured is not None,
        "reason": "the config file's `threads`" if configured is not None else choice.reason,
    }


def engine_setup() -> dict[str, Any]:
    """Which engine setup each model measured on this machine and build uses, and why."""
    import datetime

    from llmcli.tuning import identity, setups, verdicts

    name, flags = identity.cpu_description()
    # The features that decide which kernels and repacked layouts llama.cpp uses.
    shown = ("avx", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8")
    features = [f for f in shown if f in flags]
    models = []
    for verdict in sorted(verdicts.all_verdicts(), key=lambda v: v.model):
        label = verdict.model.split("|")[0]
        if verdict.model.endswith("|embedding"):
            label += " (embeddings)"
        models.append(
            {
                "model": label,
                "setup": verdict.setup,
                "reason": verdict.reason,
                "threads": verdict.threads,
                "measured": datetime.datetime.fromtimestamp(verdict.measured_at)
                .astimezone()
                .isoformat(timespec="seconds"),
                "probes": [
                    {
                        "setup": p.setup,
                        "ok": p.ok,
                        "failure": p.failure,
                        "prompt_tokens_per_s": round(p.prompt_tps, 1),
                        "generation_tokens_per_s": round(p.gen_tps, 1),
                    }
                    for p in verdict.probes
                ],
                "batch_cost": {str(k): v for k, v in verdict.batch_cost.items()},
            }
        )
    pinned = os.environ.get(setups.ENV_SETUP, "").strip() or None
    return {
        "pinned": pinned,
        "cpu": name,
        "cpu_features": features,
        "build": identity.build_id(),
        "file": str(verdicts.verdicts_file()),
        "models": models,
        "crashes": _crash_lines(verdicts.crashes_file()),
    }


def _crash_lines(path: Path) -> list[str]:
    """ "setup TAB model key" lines -> "setup in model"."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        setup, _, key = line.partition("\t")
        if key:
            out.append(f"{setup} in {key.split('|')[0]}")
    return out


def gpu_install_commands() -> list[str]:
    """How to rebuild the engine for this machine's GPU; Metal only means anything on a
    Mac, CUDA anywhere else."""
    return [METAL_INSTALL] if sys.platform == "darwin" else [CUDA_INSTALL]


def _config() -> tuple[config.Settings | None, dict[str, Any]]:
    path = config.config_path()
    facts: dict[str, Any] = {
        "path": str(path),
        "exists": path.is_file(),
        "valid": True,
        "error": None,
        "warnings": [],
    }
    try:
        settings = config.load()
    except ConfigError as exc:
        facts.update(valid=False, error=str(exc))
        return None, facts
    facts["warnings"] = list(settings.warnings)
    return settings, facts


def _cache() -> dict[str, Any]:
    from llmcli.store import HubSettings, cached_model_names

    path = HubSettings.from_env().cache_dir
    return {
        "path": str(path),
        "exists": path.is_dir(),
        "size_bytes": _tree_size(path),
        "free_bytes": _free_space(path),
        "models": len(cached_model_names()),
    }


def _tree_size(root: Path) -> int:
    """Bytes in regular files under `root`; the cache's symlinks point at blobs that
    are counted once, where they are."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(folder, name)):
                total += st.st_size
    return total


def _free_space(path: Path) -> int | None:
    """Free bytes on the disk that holds `path`, or would hold it once created."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def _hub() -> dict[str, Any]:
    from llmcli.store import HubSettings

    settings = HubSettings.from_env()
    return {
        "endpoint": settings.endpoint or "https://huggingface.co",
        "offline": settings.offline,
        "token": _token_source(settings.token) is not None,
        "token_source": _token_source(settings.token),
    }


def _token_source(token: str | bool | None) -> str | None:
    if token is False:
        return None  # HF_HUB_DISABLE_IMPLICIT_TOKEN: none is sent
    if os.environ.get("HF_TOKEN"):
        return "HF_TOKEN"
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface"
    )
    token_file = Path(os.environ.get("HF_TOKEN_PATH") or os.path.join(home, "token"))
    try:
        if token_file.expanduser().read_text().strip():
            return "token file"
    except OSError:
        pass
    return None
