"""`image_url` and `input_audio` content parts of chat messages, as OpenAI sends them.

Images come as data URLs (`data:image/png;base64,...`); a remote URL is refused with a
400 naming the field: fetching it would let any client make the server request any
address, and it is not implemented. Each part becomes a MEDIA_MARKER in the message's
text, where it stood among the text parts, and an attachment, in order.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from llmcli.engine.types import MEDIA_MARKER

MEDIA_PARTS = ("image_url", "input_audio")


class PartError(ValueError):
    """A content part that cannot be used: the message, and the field it names."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def bad(message: str, field: str) -> PartError:
    return PartError(message, field)


def media_part(part: dict[str, Any], field: str, found: list[tuple[str, bytes]]) -> str:
    """The marker that stands for an `image_url` or `input_audio` part; its bytes are
    appended to `found` with a name for messages."""
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
    if not url.startswith("data:"):
        raise bad(
            f"'{where}': remote images are not fetched; send the image as a data: URL "
            "(data:image/png;base64,...)",
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
