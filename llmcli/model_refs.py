"""Model references: what a user may type after `-m`, `pull`, `rm`.

    work                             a user alias (`[aliases]` in the config file)
    smollm2, qwen2.5:1.5b            built-in alias (`llmcli.aliases`)
    owner/repo                       a Hub repo; quantization by preference order
    owner/repo:Q5_K_M                a Hub repo and a quantization (any case)
    owner/repo/path/to/file.gguf     one file of a Hub repo
    hf.co/owner/repo[:QUANT]         ollama's spelling; also huggingface.co/ and https://
    ./model.gguf, /abs, ~/m.gguf     a local file

Pure: the one question that needs the disk ("is there a file by that name?") is asked
through the `exists` callback, so everything here is testable without I/O.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from llmcli import aliases
from llmcli.errors import ModelNotFoundError, UsageError
from llmcli.quants import normalize_quant


@dataclass(frozen=True)
class LocalRef:
    path: str  # as typed; `~` is expanded by the caller, which owns the file system


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    quant: str | None = None  # normalized upper case, e.g. "Q4_K_M"
    filename: str | None = None  # repo-relative path
    alias: str | None = None  # the canonical `family:tag` it came from, if any

    @property
    def display(self) -> str:
        """The shortest spelling that means the same model, for messages."""
        if self.alias:
            return self.alias
        if self.filename:
            return f"{self.repo_id}/{self.filename}"
        return f"{self.repo_id}:{self.quant}" if self.quant else self.repo_id


ModelRef = LocalRef | HubRef

# Hub names: letters, digits, `-`, `_`, `.`; may not start with a separator and `..`
# is never allowed (https://huggingface.co/docs/hub/repositories-naming, roughly).
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,95})$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HUB_PREFIXES = ("hf.co/", "huggingface.co/", "www.huggingface.co/")


def _never_exists(_path: str) -> bool:
    return False


def parse_ref(
    text: str,
    *,
    exists: Callable[[str], bool] = _never_exists,
    user_aliases: Mapping[str, str] | None = None,
) -> ModelRef:
    """Turn what the user typed into a reference, or raise UsageError/ModelNotFoundError.

    `exists(text)` tells whether a local file of that name exists; a path that exists
    always means that file, whatever it looks like. `user_aliases` (lower-case name ->
    reference, from the config file) come before the built-in aliases but never before
    a local path.
    """
    ref = text.strip()
    if not ref:
        raise UsageError("empty model name")
    lowered = ref.lower()
    for scheme in ("https://", "http://"):
        if lowered.startswith(scheme):
            ref, lowered = ref[len(scheme) :], lowered[len(scheme) :]
            if not lowered.startswith(_HUB_PREFIXES):
                raise UsageError(f"not a Hugging Face address: {text}")
    for prefix in _HUB_PREFIXES:
        if lowered.startswith(prefix):
            return _parse_hub(ref[len(prefix) :], original=text)
    if _is_local_spelling(ref) or exists(ref):
        return LocalRef(ref)
    target = (user_aliases or {}).get(lowered)
    if target is not None:
        # Resolved without the user's aliases, so that aliases cannot loop.
        return parse_ref(target, exists=exists)
    if "/" not in ref:
        return _parse_alias(ref)
    return _parse_hub(ref, original=text)


def _is_local_spelling(ref: str) -> bool:
    if ref.startswith(("/", "./", "../", "~", ".\\", "..\\")) or ref in (".", ".."):
        return True
    if re.match(r"^[A-Za-z]:[\\/]", ref):  # a Windows drive path
        return True
    # `model.gguf` or `dir/model.gguf` is a file; `owner/repo/file.gguf` (two or more
    # slashes) is a Hub file unless it exists on disk (checked by the caller).
    return ref.lower().endswith(".gguf") and ref.count("/") < 2


def _parse_alias(ref: str) -> HubRef:
    family, _, tag = ref.partition(":")
    entry = aliases.FAMILIES.get(family.lower())
    if entry is None:
        raise ModelNotFoundError(
            f"unknown model name: {ref}", hint=_suggest(ref, aliases.all_names())
        )
    tag = tag.lower() or entry.default_tag
    target = entry.tags.get(tag)
    if target is None:
        tags = ", ".join(f"{family.lower()}:{t}" for t in entry.tags)
        raise ModelNotFoundError(f"unknown model name: {ref}", hint=f"available: {tags}")
    return HubRef(target.repo_id, quant=target.quant, alias=f"{family.lower()}:{tag}")


def _suggest(ref: str, names: list[str]) -> str:
    close = difflib.get_close_matches(ref.lower(), names, n=3, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(close) + "?"
    return "use owner/repo for a Hugging Face repo, or a path to a .gguf file"


def _parse_hub(ref: str, *, original: str) -> HubRef:
    quant: str | None = None
    # `owner/repo:QUANT`; a colon may only appear here, never in a repo or file name.
    if ":" in ref:
        ref, _, tag = ref.rpartition(":")
        if not _TAG.match(tag):
            raise UsageError(f"invalid quantization in {original!r}")
        quant = normalize_quant(tag)
    parts = ref.split("/")
    if len(parts) < 2:
        raise UsageError(f"not a model reference: {original}", hint="expected owner/repo")
    owner, repo, rest = parts[0], parts[1], parts[2:]
    for name in (owner, repo):
        if not _NAME.match(name) or ".." in name or name.endswith("."):
            raise UsageError(f"invalid Hugging Face repo name in {original!r}")
    if not rest:
        return HubRef(f"{owner}/{repo}", quant=quant)
    if quant is not None:
        raise UsageError(f"give a file or a quantization, not both: {original}")
    filename = "/".join(rest)
    if not is_safe_repo_path(filename):
        raise UsageError(f"unsafe file name: {filename!r}")
    if not filename.lower().endswith(".gguf"):
        raise UsageError(f"not a GGUF file: {original}", hint="the file name must end in .gguf")
    return HubRef(f"{owner}/{repo}", filename=filename)


def is_safe_repo_path(path: str) -> bool:
    """False for repo-relative paths that could escape the folder they are stored in.

    File names come from users and from Hub listings alike; both are untrusted.
    """
    return not (
        not path
        or "\\" in path
        or path.startswith("/")
        or re.match(r"^[A-Za-z]:", path) is not None
        or any(part in ("", ".", "..") for part in path.split("/"))
        or any(ord(ch) < 32 for ch in path)
    )
