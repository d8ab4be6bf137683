"""The ways llmcli can ask llama.cpp to run a model on the CPU.

llama.cpp repacks some weight types at load time into a layout for this CPU's fastest
kernels ("extra buffer types": AVX2/AVX-512 interleaved blocks, AMX tiles on recent Intel
Xeons). That is usually fastest, but on some CPUs a build's repacked kernels fault: on
Xeons with AMX, ggml's AMX matrix kernels died with SIGILL on any batch of two or more
tokens while its single-token path ran, faster than without repacking. So there are three
setups worth having, and which is safe and fastest is measured, not assumed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV_SETUP = "LLMCLI_ENGINE_SETUP"


@dataclass(frozen=True)
class EngineSetup:
    name: str
    # llama_model_params.use_extra_bufts: weights repacked for this CPU's kernels.
    repack: bool
    # Tokens per engine step (n_ubatch); None: as many as a batch holds.
    ubatch: int | None
    summary: str


REPACK = EngineSetup(
    "repack", True, None, "weights repacked for this CPU, as llama.cpp does by default"
)
NO_REPACK = EngineSetup("no-repack", False, None, "weights as stored in the file")
REPACK_SINGLE = EngineSetup(
    "repack-single",
    True,
    1,
    "weights repacked for this CPU, one token per engine step, so batches never reach "
    "the repacked matrix kernels",
)
SETUPS = {s.name: s for s in (REPACK, NO_REPACK, REPACK_SINGLE)}
AUTO = "auto"


def setup_named(name: str) -> EngineSetup:
    """The setup of that name; ValueError listing the names otherwise."""
    try:
        return SETUPS[name.strip().lower()]
    except KeyError:
        names = ", ".join([AUTO, *SETUPS])
        raise ValueError(f"unknown engine setup {name!r} (choose from: {names})") from None


def setup_from_env() -> EngineSetup | None:
    """The setup LLMCLI_ENGINE_SETUP pins, or None to choose automatically."""
    value = os.environ.get(ENV_SETUP, "").strip().lower()
    if value in ("", AUTO):
        return None
    return setup_named(value)
