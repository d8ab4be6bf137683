"""A name for "this model file" that costs nothing to compute on every answer."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SAMPLE = 1 << 20


def file_digest(path: Path) -> str:
    """`sha256:<hex>` for a file in the Hub cache (its blob is named by its hash);
    otherwise `sample:<hex>`, a hash of the size and the first and last MiB (hashing a
    whole file of gigabytes would cost every run seconds)."""
    try:
        real = path.resolve()
        if real.parent.name == "blobs" and _SHA256.fullmatch(real.name):
            return f"sha256:{real.name}"
        size = real.stat().st_size
        digest = hashlib.sha256(str(size).encode())
        with real.open("rb") as f:
            digest.update(f.read(_SAMPLE))
            f.seek(max(0, size - _SAMPLE))
            digest.update(f.read(_SAMPLE))
    except OSError:
        return "unknown"
    return f"sample:{digest.hexdigest()[:32]}"
