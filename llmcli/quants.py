"""Which GGUF file(s) of a repo a reference means: quantization names, split files,
the default preference order. Pure: works on lists of repo-relative paths, so the same
choice is made from a Hub listing and from the local cache.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

# Used when a reference names no quantization: the best size/quality trade-off first
# (Q4_K_M is what llama.cpp, ollama and LM Studio default to), then the nearest
# neighbours, then the legacy and larger formats. A repo with none of these (only IQ*
# quants, say) needs an explicit `:QUANT`.
PREFERENCE: tuple[str, ...] = (
    "Q4_K_M",
    "Q4_K_S",
    "Q5_K_M",
    "Q5_K_S",
    "Q4_0",
    "Q4_1",
    "Q6_K",
    "Q8_0",
    "F16",
    "BF16",
    "F32",
)

# `name-00001-of-00003.gguf`: llama.cpp's gguf-split naming; the loader is given the first
# part and finds the others next to it.
_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$", re.IGNORECASE)
_QUANT = re.compile(r"^(?:I?Q\d+(?:_[A-Z0-9]+)*|BF16|FP16|F16|FP32|F32)$", re.IGNORECASE)
_SYNONYMS = {"FP16": "F16", "FP32": "F32"}


def normalize_quant(text: str) -> str:
    upper = text.strip().upper()
    return _SYNONYMS.get(upper, upper)


def looks_like_quant(text: str) -> bool:
    return bool(_QUANT.match(text.strip()))


def is_gguf(path: str) -> bool:
    return path.lower().endswith(".gguf")


def is_model_file(path: str) -> bool:
    """GGUF files that are models: vision projectors and imatrix data are GGUFs too."""
    name = PurePosixPath(path).name.lower()
    return is_gguf(name) and not name.startswith("mmproj") and "imatrix" not in name


def split_info(path: str) -> tuple[str, int, int] | None:
    """(path without the part suffix, part number, part count) for a split GGUF part."""
    match = _SPLIT.match(path)
    if match is None:
        return None
    return match["stem"], int(match["part"]), int(match["total"])


def quant_of(path: str) -> str | None:
    """The quantization named in a GGUF file name, e.g. `Llama-3.2-1B-Q4_K_M.gguf` ->
    `Q4_K_M`; None when the name carries none."""
    name = PurePosixPath(path).name
    info = split_info(name)
    stem = info[0] if info else name[: -len(".gguf")] if is_gguf(name) else name
    # The quant is the last `-`/`.`-separated token that looks like one: names such as
    # `model.Q4_K_M`, `model-q4_k_m`, `model-UD-Q4_K_XL` and `model-f16` all end in it.
    for token in reversed(re.split(r"[-.]", stem)):
        if looks_like_quant(token):
            return normalize_quant(token)
    return None


@dataclass(frozen=True)
class Candidate:
    """One model in a repo: a single GGUF, or all parts of a split one (in order)."""

    paths: tuple[str, ...]
    quant: str | None

    @property
    def primary(self) -> str:
        """The file to hand to the loader (the first part of a split model)."""
        return self.paths[0]


class SelectionError(Exception):
    """No file matches; `available` lists what the repo has, for the message."""

    def __init__(self, message: str, available: list[str]) -> None:
        super().__init__(message)
        self.available = available


def candidates(paths: Iterable[str]) -> list[Candidate]:
    """Group a repo's files into models. Incomplete split sets are left out: a split
    model is usable only when every part is present."""
    singles: list[Candidate] = []
    splits: dict[tuple[str, int], dict[int, str]] = {}
    for path in paths:
        if not is_model_file(path):
            continue
        info = split_info(path)
        if info is None:
            singles.append(Candidate((path,), quant_of(path)))
        else:
            stem, part, total = info
            splits.setdefault((stem, total), {})[part] = path
    for (_stem, total), parts in splits.items():
        if sorted(parts) == list(range(1, total + 1)):
            ordered = tuple(parts[i] for i in range(1, total + 1))
            singles.append(Candidate(ordered, quant_of(ordered[0])))
    # Shortest path first so that a top-level file wins over a copy in a subfolder, then
    # by name so the choice is stable.
    return sorted(singles, key=lambda c: (c.primary.count("/"), len(c.primary), c.primary))


def select(paths: Iterable[str], *, quant: str | None, filename: str | None) -> Candidate:
    """The model a reference means among a repo's files.

    `filename` (a repo-relative path) wins; a split part selects its whole set. Else
    `quant` (case-insensitive), else the first quant in PREFERENCE the repo has.
    """
    found = candidates(paths)
    if filename is not None:
        for cand in found:
            if any(p.lower() == filename.lower() for p in cand.paths):
                return cand
        raise SelectionError(f"no file {filename}", [c.primary for c in found])
    available = sorted({c.quant for c in found if c.quant is not None})
    if not found:
        raise SelectionError("no GGUF model files", [])
    if quant is not None:
        wanted = normalize_quant(quant)
        for cand in found:
            if cand.quant == wanted:
                return cand
        raise SelectionError(f"no {wanted} quantization", available)
    for preferred in PREFERENCE:
        for cand in found:
            if cand.quant == preferred:
                return cand
    if len(found) == 1:  # one model, whatever its name says: there is no choice to make
        return found[0]
    raise SelectionError("no default quantization; name one", available)
