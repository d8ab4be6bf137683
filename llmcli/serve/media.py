"""`image_url` and `input_audio` content parts of chat messages, as OpenAI sends them.

Images come as data URLs (`data:image/png;base64,...`). An http(s) URL is refused with a
400 naming the field unless the server was started with `--allow-remote-media`: fetching
lets any client make the server request any address it can reach. With it, the URL is
kept as text here and fetched by `fetched` (off the event loop), within the bounds of
llmcli.remote_media. Each part becomes a MEDIA_MARKER in the message's text, where it
stood among the text parts, and an attachment, in order.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from llmcli.engine.types import MEDIA_MARKER
from llmcli.errors import MediaInvalidError
from llmcli.remote_media import fetch, is_remote

MEDIA_PARTS = ("image_url", "input_audio")


class PartError(ValueError):
    """A content part that cannot be used: the message, and the field it names."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def bad(message: str, field: str) -> PartError:
    return PartError(message, field)


# A part's name for messages, and its bytes or, for a remote image, its URL.
Found = list[tuple[str, bytes | str]]


def media_part(part: dict[str, Any], field: str, found: Found, *, remote: bool = False) -> str:
    """The marker that stands for an `image_url` or `input_audio` part; its bytes (or,
    with `remote`, its http(s) URL) are appended to `found` with a name for messages."""
    if part.get("type") == "input_audio":
        audio = part.get("input_audio")
        data = audio.get("data") if isinstance(audio, dict) else None
        if not isinstance(data, str):
            raise bad(f"'{field}.input_audio.data' must be base64 text", f"{field}.input_audio")
        found.append((f"{field}.input_audio", _base64(data, f"{field}.input_audio.data")))
        return MEDIA_MARKER
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    where = f"{field}.image_url.url"
    if not isinstance(url, str):
        raise bad(f"'{where}' must be a string", where)
    if remote and is_remote(url):
        found.append((where, url))
        return MEDIA_MARKER
    if not url.startswith("data:"):
        if remote:
            raise bad(f"'{where}' must be a data: URL or an http(s) URL", where)
        raise bad(
            f"'{where}': remote images are fetched only by a server started with "
            "--allow-remote-media; send the image as a data: URL (data:image/png;base64,...)",
            where,
        )
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise bad(f"'{where}' must be a base64 data URL (data:image/png;base64,...)", where)
    found.append((where, _base64(payload, where)))
    return MEDIA_MARKER


def _base64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad(f"'{field}' is not valid base64", field) from None


def fetched(found: Found) -> list[tuple[str, bytes]]:
    """Each part's bytes, the remote ones fetched in order; PartError naming the first
    that cannot be."""
    out = []
    for where, data in found:
        if isinstance(data, str):
            try:
                data = fetch(data)
            except MediaInvalidError as exc:
                raise bad(f"'{where}': {exc.message}", where) from None
        out.append((where, data))
    return out
