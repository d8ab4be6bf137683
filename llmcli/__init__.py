"""llmcli: run large language models on your own machine, from the terminal."""

import signal as _signal
import sys as _sys

__version__ = "0.1.0"


# Ctrl-C presses while the program is imported; noted as well as acted on, since an
# import that catches every exception could swallow the exit.
_pressed: list[int] = []


def _quit_quietly(signum: int, frame: object) -> None:
    # Ctrl-C while the program itself is still being imported: nothing has started, so
    # there is nothing to keep, and a traceback of the import machinery helps nobody.
    _pressed.append(signum)
    raise SystemExit(130)


def _ctrl_c_raises() -> None:
    """From here on Ctrl-C is a KeyboardInterrupt again, which the command handles."""
    if _signal.getsignal(_signal.SIGINT) is _quit_quietly:
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        if _pressed:
            raise KeyboardInterrupt


# Only when llmcli is the program (the `llmcli` script, or `python -m llmcli` while the
# package is located), never when another program imports it; and never where Ctrl-C is
# ignored (a background job).
if (_sys.argv[:1] == ["-m"] or _sys.argv[0].rsplit("/", 1)[-1] == "llmcli") and (
    _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler
):
    _signal.signal(_signal.SIGINT, _quit_quietly)
