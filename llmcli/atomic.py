"""Write a file so that readers see the old contents or the new, never half of either."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def write_atomic(path: Path, data: bytes | str | Iterable[bytes], *, durable: bool = False) -> None:
    """Write `data` (text as UTF-8, or bytes in pieces) to a temporary file beside `path`,
    then rename it over `path`. Concurrent writers each rename a whole file; the last
    wins. `durable` also flushes it to the disk first, for files a crash must not cost
    (a saved chat). Raises OSError; the temporary file never stays behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, str):
                f.write(data.encode("utf-8"))
            elif isinstance(data, bytes):
                f.write(data)
            else:
                for piece in data:
                    f.write(piece)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
