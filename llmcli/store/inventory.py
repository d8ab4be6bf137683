"""The models in the cache, other tools' downloads included: `list`, and what `rm`
would delete."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcli import config
from llmcli.errors import ModelNotFoundError, UsageError
from llmcli.model_refs import HubRef, parse_ref
from llmcli.quants import candidates, is_model_file
from llmcli.store.cached import model_names
from llmcli.store.hub_client import os_error
from llmcli.store.leftovers import Leftover, leftovers, remove_leftovers
from llmcli.store.settings import HubSettings

if TYPE_CHECKING:
    from huggingface_hub import CachedFileInfo, HFCacheInfo


@dataclass(frozen=True)
class CachedModel:
    """One row of `llmcli list`."""

    name: str  # what to type to use it: an alias, owner/repo:QUANT or owner/repo/file
    repo_id: str
    commit: str
    refs: tuple[str, ...]
    files: tuple[str, ...]  # repo-relative
    quant: str | None
    size: int
    modified: float  # seconds since the epoch
    path: Path


@dataclass(frozen=True)
class RemovalPlan:
    """What `remove` would delete; `execute()` does it."""

    models: tuple[CachedModel, ...]
    freed_bytes: int
    _strategies: tuple[Any, ...]  # huggingface_hub DeleteCacheStrategy objects
    leftovers: tuple[Leftover, ...] = ()

    def execute(self) -> int:
        remove_leftovers(self.leftovers)
        for strategy in self._strategies:
            strategy.execute()
        return self.freed_bytes


def _scan(settings: HubSettings) -> HFCacheInfo | None:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        return scan_cache_dir(settings.cache_dir)
    except CacheNotFound:
        return None
    except OSError as e:
        raise os_error(e, settings) from e


def _models_in(info: HFCacheInfo) -> Iterator[tuple[CachedModel, list[CachedFileInfo], Any]]:
    """Every GGUF model in the cache, with its cache entries and its revision."""
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            by_rel = {f.file_path.relative_to(rev.snapshot_path).as_posix(): f for f in rev.files}
            found = candidates(by_rel)
            for cand, name in zip(found, model_names(repo.repo_id, found), strict=True):
                entries = [by_rel[p] for p in cand.paths]
                model = CachedModel(
                    name=name,
                    repo_id=repo.repo_id,
                    commit=rev.commit_hash,
                    refs=tuple(sorted(rev.refs)),
                    files=cand.paths,
                    quant=cand.quant,
                    size=sum(e.size_on_disk for e in entries),
                    modified=max(e.blob_last_modified for e in entries),
                    path=entries[0].file_path,
                )
                yield model, entries, rev


def list_models() -> list[CachedModel]:
    """Cached GGUF models, including those other tools downloaded, by name."""
    info = _scan(HubSettings.from_env())
    if info is None:
        return []
    return sorted((m for m, _e, _r in _models_in(info)), key=lambda m: (m.name.lower(), m.commit))


def _matches(ref: HubRef, model: CachedModel) -> bool:
    if model.repo_id.lower() != ref.repo_id.lower():
        return False
    if ref.filename is not None:
        return any(f.lower() == ref.filename.lower() for f in model.files)
    if ref.quant is not None:
        return model.quant == ref.quant
    return True  # a bare owner/repo means every model of that repo


def plan_removal(texts: list[str]) -> RemovalPlan:
    """What removing these references would delete, without deleting anything.

    A bare `owner/repo` removes every cached revision of that repo; an alias, `:QUANT`
    or file removes just that model's files (and the revision, once no model is left
    in it).
    """
    settings = HubSettings.from_env()
    refs: list[HubRef] = []
    for text in texts:
        parsed = parse_ref(text, user_aliases=config.load().aliases)
        if not isinstance(parsed, HubRef):
            raise UsageError(f"{text} is a local file, not a cached model; delete it yourself")
        refs.append(parsed)
    info = _scan(settings)
    entries = list(_models_in(info)) if info is not None else []
    chosen: dict[tuple[str, str, tuple[str, ...]], tuple[CachedModel, list[Any], Any]] = {}
    # Interrupted downloads in the repos named go too: nothing else can reclaim them.
    partials = leftovers({r.repo_id for r in refs})
    for ref, text in zip(refs, texts, strict=True):
        hits = [e for e in entries if _matches(ref, e[0])]
        if not hits and not any(p.repo_id.lower() == ref.repo_id.lower() for p in partials):
            raise ModelNotFoundError(f"not in the cache: {text}", hint="see `llmcli list`")
        for hit in hits:
            chosen[(hit[0].repo_id, hit[0].commit, hit[0].files)] = hit
    if info is None:
        return RemovalPlan((), sum(p.size for p in partials), (), tuple(partials))
    whole: list[str] = []
    partial: list[CachedFileInfo] = []
    for commit in {key[1] for key in chosen}:
        hits = [v for k, v in chosen.items() if k[1] == commit]
        revision = hits[0][2]
        doomed = {f.file_path for _m, files, _r in hits for f in files}
        others = [f for f in revision.files if f.file_path not in doomed]
        rest_has_models = any(is_model_file(f.file_path.name) for f in others)
        if rest_has_models:
            partial.extend(f for _m, files, _r in hits for f in files)
        else:
            whole.append(commit)
    strategies: list[Any] = []
    if whole:
        strategies.append(info.delete_revisions(*whole))
    if partial:
        strategies.append(info.delete_files(*partial))
    freed = sum(int(s.expected_freed_size) for s in strategies) + sum(p.size for p in partials)
    models = tuple(sorted((v[0] for v in chosen.values()), key=lambda m: m.name))
    return RemovalPlan(models, freed, tuple(strategies), tuple(partials))
