"""How many CPU threads to decode with, given what else is running right now.

llama.cpp's threads meet at a barrier after every operation, and its OpenMP threads spin
while they wait. On a core that another busy process holds, one of them runs only part
of the time and every barrier waits for it: with one of two cores busy, decoding with two
threads fell to 36-40 tok/s where one thread gave 80. So the default leaves out the cores
that other runnable processes are using at start-up.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from llmcli.config import usable_cores

SAMPLES = 6
SAMPLE_GAP_S = 0.001


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    usable_cores: int
    busy_cores: int  # usable cores left out because other processes kept them busy
    pinned: bool = False  # LLMCLI_THREADS

    @property
    def reason(self) -> str:
        if self.pinned:
            return f"{ENV_THREADS}"
        if self.busy_cores == 0:
            return f"every usable core ({self.usable_cores})"
        return (
            f"{self.usable_cores} usable cores, {self.busy_cores} busy with other "
            "processes at start-up"
        )


def _runnable_now() -> int | None:
    """Runnable tasks system-wide this instant (the 4th field of /proc/loadavg), less this
    process's own other runnable threads (engine threads still spinning after a step),
    so what remains is this thread plus everything else."""
    try:
        field = Path("/proc/loadavg").read_text().split()[3]
        total = int(field.split("/")[0])
    except (OSError, IndexError, ValueError):
        return None
    return total - _own_runnable_others()


def _own_runnable_others() -> int:
    own = 0
    try:
        tasks = list(Path("/proc/self/task").iterdir())
    except OSError:
        return 0
    for task in tasks:
        try:
            # "pid (comm) S ...": the state follows the closing parenthesis.
            state = (task / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        own += state == "R"
    return max(0, own - 1)


def quiet(samples: int = 3 * SAMPLES, gap_s: float = SAMPLE_GAP_S) -> bool:
    """No other task was runnable at any moment over a few tens of milliseconds: a time
    to measure speeds that will be kept."""
    for i in range(samples):
        n = _runnable_now()
        if n is None or n > 1:
            return False
        if i < samples - 1:
            time.sleep(gap_s)
    return True


def busy_cores(samples: int = SAMPLES, gap_s: float = SAMPLE_GAP_S) -> int:
    """Cores other processes keep busy: the fewest other runnable tasks seen over a few
    milliseconds, so a process that only passes through is not counted."""
    seen: list[int] = []
    for i in range(samples):
        n = _runnable_now()
        if n is None:
            return 0
        seen.append(n - 1)
        if i < samples - 1:
            time.sleep(gap_s)
    return max(0, min(seen))


ENV_THREADS = "LLMCLI_THREADS"


def choose_threads() -> ThreadChoice:
    """LLMCLI_THREADS when set; else every usable core, less those the machine's other
    runnable tasks need: the count of runnable tasks covers every CPU of the machine, so
    on a big machine whose other cores are busy a process allowed two cores still gets
    two."""
    usable = usable_cores()
    pinned = os.environ.get(ENV_THREADS, "").strip()
    if pinned.isdigit() and int(pinned) > 0:
        return ThreadChoice(int(pinned), usable, 0, pinned=True)
    free = (os.cpu_count() or usable) - busy_cores()
    threads = max(1, min(usable, free))
    return ThreadChoice(threads, usable, usable - threads)
