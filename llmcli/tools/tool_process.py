"""The functions of a tool file run in a child process of their own (tool_child), so that one that
hangs can be stopped: at --tool-timeout the child (and whatever it started) is killed,
the model reads that the call timed out, and the next call starts a fresh child. The
child imports the file once and serves calls one at a time, so module state lasts from
call to call while nothing times out.

Parent and child speak one JSON line each way per call over the child's stdin and stdout;
in the child, what a tool prints goes to stderr (never into the answer on stdout) and
its stdin is /dev/null. The child runs in a session of its own: Ctrl-C at the terminal
reaches llmcli, which ends the child on its way out.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from llmcli.tools.base import ToolFailed


class ToolProcess:
    """The child process that runs one tool file's functions, started at the first call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._proc: subprocess.Popen[bytes] | None = None

    def call(self, name: str, arguments: dict[str, Any], timeout: float) -> str:
        """The function's result as text; ToolFailed with what the model should read when
        it raised, timed out (the child is killed) or the child died."""
        proc = self._started()
        assert proc.stdin is not None and proc.stdout is not None
        request = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
        try:
            proc.stdin.write(request.encode() + b"\n")
            proc.stdin.flush()
        except OSError:
            self._kill()
            raise ToolFailed(f"error: the tool {name} could not be started") from None
        line = self._read_line(proc.stdout.fileno(), timeout)
        if line is None:
            self._kill()
            raise ToolFailed(f"error: the tool {name} did not finish within {timeout:g} s")
        if not line:
            code = self._kill()
            raise ToolFailed(f"error: the tool {name} ended its process (exit code {code})")
        reply = json.loads(line)
        if "error" in reply:
            raise ToolFailed(str(reply["error"]))
        return str(reply["ok"])

    def close(self) -> None:
        """End the child: asked to (its stdin closes), killed if it does not at once."""
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=2)
        self._kill()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            # The child imports what this process would: the same module search path.
            start = (
                "import sys; sys.path[:] = sys.argv[2:]; "
                "from llmcli.tools.tool_child import serve; serve(sys.argv[1])"
            )
            self._proc = subprocess.Popen(
                [sys.executable, "-c", start, str(self.path), *sys.path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
        return self._proc

    def _read_line(self, fd: int, timeout: float) -> bytes | None:
        """One reply line; b"" when the child closed its end; None at the timeout."""
        import time

        deadline = time.monotonic() + timeout
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b""
            data += chunk
        return data

    def _kill(self) -> int | None:
        """Kill the child and every process it started (its session); its exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        code = proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return code
