"""A model's GGUF header read from the Hub with ranged GETs, without downloading the file
and without writing anything to the cache.

The file is chosen as `pull` chooses it (the repo's listing, the quantization asked
for); its header is read from the start of the file in growing pieces (1 MiB, then
twice as much each time) until it parses, so about the header's size is transferred,
at most twice that. A split model's parts are read in turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmcli.errors import HeaderTruncatedError, ModelInvalidError, NetworkError
from llmcli.gguf_file.header import Header, parse_header
from llmcli.model_refs import HubRef
from llmcli.store.download import _choose, _list_remote
from llmcli.store.hub_client import hub_errors, install_http_client, quiet_library_log
from llmcli.store.settings import HubSettings

FIRST_READ = 1 << 20
# No GGUF header comes near this (a 256k-token vocabulary with its merges is ~10 MB).
MAX_HEADER = 256 << 20


@dataclass(frozen=True)
class RemoteHeaders:
    repo_id: str
    paths: tuple[str, ...]
    quant: str | None
    headers: tuple[Header, ...]
    file_bytes: int  # the model's size on the Hub, all parts
    bytes_read: int  # what was transferred to read the headers


def remote_headers(ref: HubRef, *, revision: str | None = None) -> RemoteHeaders:
    """The headers of the file(s) `ref` means on the Hub. Raises the store's errors:
    ModelNotFoundError, NetworkError, ModelInvalidError."""
    settings = HubSettings.from_env()
    if settings.offline:
        raise NetworkError(
            f"{ref.display} is not in the cache and offline mode is on",
            hint=f"run `llmcli pull {ref.display}` while online",
        )
    quiet_library_log()
    install_http_client(settings)
    with hub_errors(ref.display, settings):
        listing = _list_remote(settings, ref.repo_id, revision)
        chosen = _choose(ref, listing)
        headers: list[Header] = []
        transferred = 0
        for rel in chosen.paths:
            header, got = _read_header(settings, ref.repo_id, rel, revision, listing[rel].size)
            headers.append(header)
            transferred += got
    return RemoteHeaders(
        repo_id=ref.repo_id,
        paths=chosen.paths,
        quant=chosen.quant,
        headers=tuple(headers),
        file_bytes=sum(listing[p].size for p in chosen.paths),
        bytes_read=transferred,
    )


def _read_header(
    settings: HubSettings, repo_id: str, rel: str, revision: str | None, size: int
) -> tuple[Header, int]:
    from huggingface_hub import get_session, hf_hub_url

    # Exported by huggingface_hub.utils, though not marked so for a type checker.
    from huggingface_hub.utils import (  # type: ignore[attr-defined]
        build_hf_headers,
        hf_raise_for_status,
    )

    url = hf_hub_url(repo_id, rel, revision=revision, endpoint=settings.endpoint)
    session = get_session()
    name = f"{repo_id}/{rel}"
    data = bytearray()
    transferred = 0
    want = FIRST_READ
    while True:
        end = min(want, size) if size else want
        headers = build_hf_headers(token=settings.token)
        headers["Range"] = f"bytes={len(data)}-{end - 1}"
        # Streamed, and never more than asked for: a server that ignores Range and
        # sends the whole file is cut off.
        with session.stream("GET", url, headers=headers) as response:
            hf_raise_for_status(response)
            # A 200 is the whole file from its start again: keep only what is new.
            skip = len(data) if response.status_code == 200 and data else 0
            for chunk in response.iter_bytes():
                transferred += len(chunk)
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                data += chunk[: end - len(data)]
                if len(data) >= end:
                    break
        try:
            return parse_header(bytes(data), name), transferred
        except HeaderTruncatedError:
            if (size and len(data) >= size) or want >= MAX_HEADER or len(data) < end:
                raise ModelInvalidError(f"GGUF header is truncated: {name}") from None
            want *= 2
