"""What the answer log costs, measured side by side in one run:

- a one-shot answer with the log on over the same answer with `--no-log`, wall time of
  `llmcli run -m MODEL --temperature 0 -n 16 "Say hi"` (runs alternate, medians);
- `llmcli logs -q WORD` over 100,000 synthetic entries, against `llmcli logs` (the
  latest entries, no search) on the same database, and the full-text query in-process
  against a plain `LIKE` scan of the same table.

Usage: python benchmarks/bench_log.py [--reps 9] [--entries 100000]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testmodel import model_path

from llmcli.answer_log import database
from llmcli.answer_log.entry import Entry
from llmcli.answer_log.recorder import Recorder

# Synthetic entries draw their words from this list.
WORDS = (  # noqa: SIM905
    "sky blue light scatter prime number dragon castle river mountain python function "
    "table query index answer model token layer attention embedding vector king queen "
    "apple bread coffee music piano window garden winter summer ocean cloud"
).split()


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def fill(path: Path, n: int) -> None:
    rng = random.Random(7)
    with database.opened(path) as conn:
        conn.execute("BEGIN")
        for i in range(n):
            words = " ".join(rng.choice(WORDS) for _ in range(30))
            database.write(
                conn,
                Entry(
                    prompt=f"question {i}: {words[:80]}",
                    answer=words * 3,
                    model=rng.choice(["smollm2:135m", "qwen2.5:1.5b"]),
                    command="run",
                    conversation_id=f"c{i // 3}",
                    created=time.time() - (n - i),
                ),
            )
        conn.execute("COMMIT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    model = str(model_path())
    llmcli = [sys.executable, "-m", "llmcli"]

    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "LLMCLI_HOME": home, "LLMCLI_THREADS": "2"}
        env.pop("LLMCLI_LOG", None)
        run = [*llmcli, "run", "-m", model, "--temperature", "0", "-n", "16", "Say hi"]
        wall(run, env)  # engine setup measured once, caches warm
        on, off = [], []
        for _ in range(args.reps):
            on.append(wall(run, env))
            off.append(wall([*run, "--no-log"], env))
        a, b = statistics.median(on), statistics.median(off)
        print(f"one-shot run, log on : {a:.3f} s (median of {args.reps})")
        print(f"one-shot run, no log : {b:.3f} s")
        print(f"ratio on/off         : {a / b:.3f}  ({(a - b) * 1000:+.1f} ms)")
        # The same write in-process, without the noise of whole runs: an entry handed to
        # the recorder and waited for, into the database those runs filled.
        writes = []
        for i in range(args.reps):
            recorder = Recorder(Path(home) / "logs.db")
            t = time.perf_counter()
            recorder.record(Entry(f"p{i}", "a", "m", "run", "c"))
            assert recorder.close() is None
            writes.append(time.perf_counter() - t)
        print(
            f"one entry, in-process: {statistics.median(writes) * 1000:.1f} ms "
            "(thread, connect, write)"
        )

    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "LLMCLI_HOME": home}
        path = Path(home) / "logs.db"
        start = time.perf_counter()
        fill(path, args.entries)
        size = database.disk_size(path) / 1e6
        print(
            f"\n{args.entries} entries written in {time.perf_counter() - start:.1f} s, "
            f"{size:.0f} MB"
        )
        search, latest = [], []
        for _ in range(args.reps):
            search.append(wall([*llmcli, "logs", "-q", "dragon castle", "--count", "10"], env))
            latest.append(wall([*llmcli, "logs", "--count", "10"], env))
        a, b = statistics.median(search), statistics.median(latest)
        print(f"llmcli logs -q 'dragon castle' : {a:.3f} s")
        print(f"llmcli logs (latest 10)        : {b:.3f} s")
        print(f"ratio search/latest            : {a / b:.2f}")
        conn = sqlite3.connect(path)
        fts, like = [], []
        for _ in range(args.reps):
            t = time.perf_counter()
            conn.execute(
                "SELECT r.id FROM responses r JOIN responses_fts f ON f.rowid = r.rowid "
                "WHERE responses_fts MATCH ? ORDER BY f.rank LIMIT 10",
                ('"dragon" "castle"',),
            ).fetchall()
            fts.append(time.perf_counter() - t)
            t = time.perf_counter()
            conn.execute(
                "SELECT id FROM responses WHERE (prompt LIKE ? OR answer LIKE ?) "
                "AND (prompt LIKE ? OR answer LIKE ?) LIMIT 10000000",
                ("%dragon%", "%dragon%", "%castle%", "%castle%"),
            ).fetchall()
            like.append(time.perf_counter() - t)
        conn.close()
        a, b = statistics.median(fts), statistics.median(like)
        print(f"in-process FTS5 query          : {a * 1000:.1f} ms")
        print(f"in-process LIKE scan           : {b * 1000:.1f} ms")
        print(f"ratio FTS/LIKE                 : {a / b:.3f}")


if __name__ == "__main__":
    main()
