"""Where a model's projector (mmproj) file is: named with --mmproj, or found beside it.

llama.cpp's converters and the Hub's vision repos name projectors `mmproj-*.gguf` (and
`*mmproj*.gguf`); a model file with one such file in its folder (a download puts the
projector it pulls beside the model) has its projector. No weights are read here.
"""

from __future__ import annotations

from pathlib import Path

from llmcli.errors import LlmcliError, ModelNotFoundError, UsageError
from llmcli.gguf_file.header import read_header


def is_projector_name(name: str) -> bool:
    lowered = name.lower()
    return lowered.endswith(".gguf") and "mmproj" in lowered


def projector_beside(model: Path) -> Path | None:
    """The projector in the model file's folder; with several, the one whose name shares
    the longest start with the model's (a folder of many models may hold several)."""
    try:
        candidates = sorted(
            p for p in model.parent.iterdir() if is_projector_name(p.name) and p != model
        )
    except OSError:
        return None
    if not candidates:
        return None
    stem = model.name.lower()

    def shared(path: Path) -> int:
        name = path.name.lower().replace("mmproj-", "").replace("-mmproj", "")
        n = 0
        for a, b in zip(name, stem, strict=False):
            if a != b:
                break
            n += 1
        return n

    return max(candidates, key=shared)


def projector_for(model: Path, given: Path | None) -> Path | None:
    """The projector to use with `model`: `given` (which must exist), else one beside it."""
    if given is not None:
        given = given.expanduser()
        if not given.is_file():
            raise ModelNotFoundError(f"no projector file at {given}")
        if not is_projector_name(given.name) and given.suffix.lower() != ".gguf":
            raise UsageError(f"--mmproj wants a projector GGUF file, not {given.name}")
        return given
    return projector_beside(model)


def projector_inputs(path: Path) -> list[str]:
    """What a projector takes ("vision", "audio"), from its GGUF header's clip keys;
    empty for a file that cannot be read as one."""
    try:
        metadata = read_header(path).metadata
    except (LlmcliError, OSError):
        return []
    keys = (("vision", "clip.has_vision_encoder"), ("audio", "clip.has_audio_encoder"))
    return [kind for kind, key in keys if metadata.get(key) is True]
