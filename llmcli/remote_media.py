"""An image or audio file fetched from an http(s) URL, within bounds.

`serve --allow-remote-media` fetches `image_url` parts that name a web address, and
`run -a URL` fetches what the user named. Bounded because a server fetches for its
clients: only http and https (a redirect elsewhere, such as file:, is refused), at most
MAX_BYTES, within TIMEOUT_S seconds in all, and only a media content type, so that a
client cannot make the server read a web page or a large file for it.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from http.client import HTTPMessage
from typing import IO
from urllib.parse import urlsplit

from llmcli.errors import MediaInvalidError

SCHEMES = ("http", "https")
MAX_BYTES = 20 << 20
TIMEOUT_S = 15.0
# What an attachment may be; `application/octet-stream` is what many file hosts say.
MEDIA_TYPES = ("image/", "audio/", "application/octet-stream")

_CHUNK = 64 << 10


def is_remote(name: str) -> bool:
    return urlsplit(name).scheme.lower() in SCHEMES and "://" in name


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects to http(s) only (urllib itself would follow one to ftp:)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not is_remote(newurl):
            raise MediaInvalidError(
                f"{req.full_url} redirects to {newurl}: only http(s) URLs are fetched"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str) -> bytes:
    """The bytes at `url`; MediaInvalidError with the reason when they cannot be had."""
    if not is_remote(url):
        raise MediaInvalidError(f"cannot fetch {url}: only http and https URLs are fetched")
    opener = urllib.request.build_opener(_HttpOnlyRedirects())
    request = urllib.request.Request(url, headers={"User-Agent": "llmcli"})
    deadline = time.monotonic() + TIMEOUT_S
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            kind = response.headers.get_content_type()
            if not kind.startswith(MEDIA_TYPES):
                raise MediaInvalidError(f"{url} is {kind}, not an image or audio file")
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > MAX_BYTES:
                raise MediaInvalidError(f"{url} is over the {MAX_BYTES >> 20} MB limit")
            return _read_bounded(response, url, deadline)
    except urllib.error.HTTPError as exc:
        raise MediaInvalidError(f"cannot fetch {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise MediaInvalidError(f"cannot fetch {url}: {exc.reason}") from None
    except TimeoutError:
        raise MediaInvalidError(f"cannot fetch {url}: no answer within {TIMEOUT_S:g} s") from None
    except (OSError, ValueError) as exc:
        raise MediaInvalidError(f"cannot fetch {url}: {exc}") from None


def _read_bounded(response: IO[bytes], url: str, deadline: float) -> bytes:
    parts: list[bytes] = []
    size = 0
    while chunk := response.read(_CHUNK):
        size += len(chunk)
        if size > MAX_BYTES:
            raise MediaInvalidError(f"{url} is over the {MAX_BYTES >> 20} MB limit")
        if time.monotonic() > deadline:
            raise MediaInvalidError(f"cannot fetch {url}: it took over {TIMEOUT_S:g} s")
        parts.append(chunk)
    return b"".join(parts)
