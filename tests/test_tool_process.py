"""Tool-file functions run in a child process (llmcli.tools.tool_process): one that
hangs is killed at the timeout, with whatever it started, and the next call gets a fresh
child; module state lasts between calls; a tool's prints never reach llmcli's stdout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llmcli.tools.base import ToolFailed
from llmcli.tools.python_file import load

TOOLS = '''
import os
import subprocess
import sys
import time

CALLS = []


def count(word: str) -> int:
    """Calls so far, this one included."""
    CALLS.append(word)
    print("printed by the tool")
    return len(CALLS)


def hang(pid_file: str) -> str:
    """Starts a grandchild, writes both pids, never finishes."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    with open(pid_file, "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(3600)
    return "never"


def die(code: int) -> str:
    """Ends its process."""
    os._exit(code)
'''


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def tool_file(tmp_path: Path) -> Path:
    path = tmp_path / "tools.py"
    path.write_text(textwrap.dedent(TOOLS), encoding="utf-8")
    return path


def test_a_hanging_call_is_killed_with_what_it_started(tool_file: Path, tmp_path: Path) -> None:
    loaded = load(tool_file)
    tools = {t.name: t for t in loaded.tools}
    try:
        assert tools["count"].call({"word": "a"}, 30) == "1"
        assert tools["count"].call({"word": "b"}, 30) == "2"  # one child, its state kept
        pids = tmp_path / "pids"
        with pytest.raises(ToolFailed, match=r"^error: the tool hang did not finish within 1 s$"):
            tools["hang"].call({"pid_file": str(pids)}, 1)
        worker, grandchild = (int(p) for p in pids.read_text().split())
        assert worker != os.getpid()
        assert gone(worker)
        # The grandchild was in the child's session: killed with it (and reaped by init,
        # which takes a moment: wait for it, bounded).
        for _ in range(200):
            if gone(grandchild) or _zombie(grandchild):
                break
            time.sleep(0.05)
        assert gone(grandchild) or _zombie(grandchild)
        # The next call starts a fresh child (with fresh state).
        assert tools["count"].call({"word": "c"}, 30) == "1"
        with pytest.raises(ToolFailed, match=r"ended its process \(exit code 3\)"):
            tools["die"].call({"code": 3}, 30)
        assert tools["count"].call({"word": "d"}, 30) == "1"
    finally:
        loaded.process.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_prints_go_to_stderr_and_the_child_ends_with_the_parent(tool_file: Path) -> None:
    """A parent that loads the file, calls, and exits: the tool's print is on stderr,
    stdout has only the parent's own line, and no child is left behind."""
    script = (
        "import sys; from pathlib import Path; from llmcli.tools.python_file import load\n"
        f"loaded = load(Path({str(tool_file)!r}))\n"
        "print(loaded.tools[0].call({'word': 'x'}, 30))\n"
        "print(loaded.process._proc.pid, file=sys.stderr)\n"
        "loaded.process.close()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1\n"
    assert "printed by the tool" in proc.stderr
    assert gone(int(proc.stderr.strip().splitlines()[-1]))
