"""The facts `llmcli doctor` reports, gathered as plain JSON-ready data (no printing).

Never reads out a secret: the Hugging Face token is reported as present or not, and
where it comes from.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from llmcli import __version__, config
from llmcli.errors import ConfigError

CUDA_INSTALL = (
    'CMAKE_ARGS="-DGGML_CUDA=on" pip install --upgrade --force-reinstall --no-cache-dir '
    "llama-cpp-python"
)
METAL_INSTALL = (
    'CMAKE_ARGS="-DGGML_METAL=on" pip install --upgrade --force-reinstall --no-cache-dir '
    "llama-cpp-python"
)


def report() -> dict[str, Any]:
    from llmcli.engine.system_info import engine_info

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
            "error": engine.error,
        },
        "gpu_install": [] if engine.gpu_offload else gpu_install_commands(),
        "threads": {
            "default": int(configured_threads or config.usable_cores()),
            "usable_cores": config.usable_cores(),
            "from_config": configured_threads is not None,
        },
        "cache": _cache(),
        "hub": _hub(),
        "config": config_facts,
    }


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
