"""A token's bytes as text: bytes that are not a whole character show as `<0xE6>`.

Standard library only, so that plain data (log-probabilities) can name a token's text
without importing the model.
"""

from __future__ import annotations

import codecs

_HEX_ERRORS = "llmcli-hex-bytes"


def _hex_bytes(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    bad = exc.object[exc.start : exc.end]
    return "".join(f"<0x{b:02X}>" for b in bad), exc.end


codecs.register_error(_HEX_ERRORS, _hex_bytes)


def piece_text(data: bytes) -> str:
    """The text of one token's bytes; bytes that are not a whole character as <0xE6>."""
    return data.decode("utf-8", errors=_HEX_ERRORS)
