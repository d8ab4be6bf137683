"""The cache read straight from its folders: which model a reference means, verified,
and the names of the cached models, all without huggingface_hub or the network (shell
completion asks on every Tab)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from llmcli import aliases
from llmcli.errors import ModelInvalidError
from llmcli.model_refs import HubRef
from llmcli.quants import Candidate, SelectionError, candidates, select
from llmcli.reporting import ProgressFactory
from llmcli.store import integrity
from llmcli.store.settings import HubSettings, repo_cache_dir

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class LocalModel:
    """A model in the cache, ready to load: `path` is the file to hand to the engine
    (the first part of a split model; llama.cpp finds the others beside it)."""

    repo_id: str
    commit: str
    files: tuple[Path, ...]
    quant: str | None

    @property
    def path(self) -> Path:
        return self.files[0]

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def snapshot_files(snapshot: Path) -> list[str]:
    """Repo-relative paths of the complete files in a snapshot folder.

    A file is listed only when its symlink resolves: an interrupted download leaves a
    `.incomplete` blob and no link, so it can never be mistaken for a model.
    """
    found: list[str] = []
    for root, _dirs, files in os.walk(snapshot):
        for name in files:
            full = Path(root, name)
            if full.exists():
                found.append(full.relative_to(snapshot).as_posix())
    return found


def _cached_commits(repo_dir: Path, revision: str | None) -> list[str]:
    if revision is not None and _COMMIT.match(revision):
        return [revision]
    ref = repo_dir / "refs" / (revision or "main")
    try:
        return [ref.read_text().strip()]
    except OSError:
        pass
    if revision is not None:
        return []
    # No `main` ref (a model fetched by commit hash): any snapshot will do, newest first.
    snapshots = repo_dir / "snapshots"
    try:
        dirs = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return []
    return [d.name for d in dirs]


def find_cached(
    ref: HubRef, *, revision: str | None = None, progress: ProgressFactory | None = None
) -> LocalModel | None:
    """The cached model `ref` means, verified, without any network access; None if the
    cache does not hold it completely."""
    settings = HubSettings.from_env()
    repo_dir = repo_cache_dir(settings, ref.repo_id)
    for commit in _cached_commits(repo_dir, revision):
        snapshot = repo_dir / "snapshots" / commit
        try:
            chosen = select(snapshot_files(snapshot), quant=ref.quant, filename=ref.filename)
        except SelectionError:
            continue
        files = tuple(snapshot / p for p in chosen.paths)
        for path, rel in zip(files, chosen.paths, strict=True):
            if not integrity.check_file(path, sha256=None, progress=progress, label=rel):
                raise ModelInvalidError(
                    f"cached file fails its checksum: {ref.repo_id}/{rel}",
                    hint=f"run `llmcli pull {ref.display}` to download it again",
                )
        return LocalModel(ref.repo_id, commit, files, chosen.quant)
    return None


def model_names(repo_id: str, found: list[Candidate]) -> list[str]:
    """What to type to use each model of one cached revision: its alias, else
    owner/repo:QUANT when the quant is unique in the revision, else owner/repo/file."""
    quants = [c.quant for c in found]
    names: list[str] = []
    for cand in found:
        unique = cand.quant is not None and quants.count(cand.quant) == 1
        alias = aliases.alias_for(repo_id, cand.quant) if unique else None
        if alias is not None:
            names.append(alias)
        elif unique:
            names.append(f"{repo_id}:{cand.quant}")
        else:
            names.append(f"{repo_id}/{cand.primary}")
    return names


def cached_model_names() -> list[str]:
    """The names `list_models` would give, read straight from the cache's folder layout
    (`models--owner--repo/snapshots/<commit>/...`) without huggingface_hub: shell
    completion calls this on every Tab and must answer at once."""
    cache = HubSettings.from_env().cache_dir
    names: set[str] = set()
    try:
        repos = [d for d in cache.iterdir() if d.name.startswith("models--")]
    except OSError:
        return []
    for repo_dir in repos:
        repo_id = repo_dir.name[len("models--") :].replace("--", "/")
        try:
            snapshots = list((repo_dir / "snapshots").iterdir())
        except OSError:
            continue
        for snapshot in snapshots:
            found = candidates(snapshot_files(snapshot))
            names.update(model_names(repo_id, found))
    return sorted(names, key=str.lower)
