"""The child process that runs one tool file's functions (see tool_process): it imports
the file and answers one JSON line per call until its stdin closes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def serve(path: str) -> None:
    """Import the tool file and answer calls until stdin closes."""
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    # A tool's prints go to stderr; it reads nothing from the protocol's pipe.
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    from llmcli.errors import LlmcliError
    from llmcli.tools.python_file import as_text, import_file

    try:
        module: Any = import_file(Path(path))
        failed = None
    except LlmcliError as exc:
        module, failed = None, str(exc)
    for line in requests:
        request = json.loads(line)
        if failed is not None:
            reply = {"error": f"error: {failed}"}
        else:
            try:
                result = getattr(module, request["name"])(**request["arguments"])
                reply = {"ok": as_text(result)}
            except BaseException as exc:  # the model reads what went wrong, whatever it was
                reply = {"error": f"error: {type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
        replies.flush()
