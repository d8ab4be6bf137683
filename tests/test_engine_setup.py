"""Choosing a safe, fast engine setup: probes that die, the fallback, kept verdicts,
the crash handler, and the thread count. Faults are real signals in real processes;
LLMCLI_PROBE_FAULT makes a probe die where a faulty CPU would kill it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clihelpers import cli_command, run_cli

from llmcli.engine.lookup import BATCH_SIZES, BatchCosts, DraftPlanner, Guess
from llmcli.errors import EngineCrashError, ExitCode
from llmcli.tuning import threads as threads_mod
from llmcli.tuning.child_probe import ProbeSpec, interpret, run_probe
from llmcli.tuning.choose import decide, pick
from llmcli.tuning.identity import model_key
from llmcli.tuning.setups import NO_REPACK, REPACK, REPACK_SINGLE, EngineSetup, setup_named
from llmcli.tuning.verdicts import ProbeResult, crashes_file, load_verdict, verdicts_file

QUESTION = "What is the capital of France?"


@pytest.fixture
def own_engine_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh measurements folder: this test measures for itself."""
    folder = tmp_path / "engine"
    monkeypatch.setenv("LLMCLI_ENGINE_CACHE", str(folder))
    return folder


def spec_for(path: Path) -> ProbeSpec:
    return ProbeSpec(
        path=str(path),
        setup="",
        threads=1,
        n_ctx=512,
        n_batch=256,
        n_gpu_layers=None,
        flash_attn=True,
        embedding=False,
        pooling="mean",
    )


# -- probes in child processes ------------------------------------------------------------


@pytest.mark.parametrize("sig", ["SIGILL", "SIGSEGV"])
def test_a_probe_that_dies_leads_to_the_fallback_and_the_verdict_is_kept(
    model_file: Path, own_engine_cache: Path, monkeypatch: pytest.MonkeyPatch, sig: str
) -> None:
    monkeypatch.setenv("LLMCLI_PROBE_FAULT", f"repack={sig}")
    spec = spec_for(model_file)
    probed: list[str] = []
    notices: list[str] = []

    def probe(setup: EngineSetup) -> ProbeResult:
        probed.append(setup.name)
        return run_probe(spec, setup)

    key = model_key(model_file)
    # Batch costs are not this test's business (their own test is below).
    busy = lambda: False  # noqa: E731
    first = decide(key, probe=probe, threads=1, notify=notices.append, quiet=busy)
    # The default died; plain weights and single steps were both tried for real.
    assert probed == ["repack", "no-repack", "repack-single"]
    assert first.setup in (NO_REPACK, REPACK_SINGLE)
    assert first.measured and first.verdict is not None
    failed = [p for p in first.verdict.probes if not p.ok]
    assert [(p.setup, p.failure) for p in failed] == [("repack", sig)]
    assert len(notices) == 1 and sig in notices[0] and first.setup.name in notices[0]
    working = [p for p in first.verdict.probes if p.ok]
    assert all(p.prompt_tps > 0 and p.gen_tps > 0 for p in working)

    # Kept: the next decision asks no probe and says nothing.
    probed.clear()
    notices.clear()
    again = decide(key, probe=probe, threads=1, notify=notices.append, quiet=busy)
    assert probed == [] and notices == []
    assert again.setup == first.setup and not again.measured
    kept = load_verdict(key)
    assert kept is not None and kept.setup == first.setup.name
    assert verdicts_file().is_relative_to(own_engine_cache)


def test_probe_outcomes_are_read_from_the_exit_status() -> None:
    assert interpret("repack", -int(signal.SIGILL), "", "").failure == "SIGILL"
    assert interpret("repack", -int(signal.SIGILL), "", "").faulted
    failed = interpret("repack", 1, "", "Traceback...\nModelInvalidError: truncated\n")
    assert not failed.ok and not failed.faulted and "truncated" in (failed.failure or "")
    fine = interpret("repack", 0, '{"prompt_tps": 100, "gen_tps": 50, "repacked": false}\n', "")
    assert fine.ok and fine.prompt_tps == 100 and not fine.repacked


def test_the_default_keeps_its_place_unless_another_is_clearly_faster() -> None:
    default = ProbeResult("repack", True, prompt_tps=200, gen_tps=100)
    slightly = ProbeResult("no-repack", True, prompt_tps=210, gen_tps=105)
    clearly = ProbeResult("no-repack", True, prompt_tps=400, gen_tps=150)
    assert pick([default, slightly], embedding=False) is default
    assert pick([default, clearly], embedding=False) is clearly
    dead = ProbeResult("repack", False, "SIGILL")
    # AMX-like: plain weights batch well, single steps on repacked weights decode fast.
    plain = ProbeResult("no-repack", True, prompt_tps=213, gen_tps=77)
    single = ProbeResult("repack-single", True, prompt_tps=221, gen_tps=178)
    assert pick([dead, plain, single], embedding=False) is single
    # Embedding evaluates prompts only.
    assert pick([dead, plain, single], embedding=True) is plain
    assert pick([dead], embedding=False) is None


def test_a_model_that_does_not_load_is_not_blamed_on_the_setup(
    tmp_path: Path, own_engine_cache: Path
) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(b"GGUF" + b"\0" * 60)
    decision = decide("cut", probe=lambda s: run_probe(spec_for(cut), s), threads=1, notify=None)
    assert decision.setup == REPACK and decision.verdict is None
    assert load_verdict("cut") is None


# -- the whole command ------------------------------------------------------------------


def test_run_falls_back_says_so_once_and_answers_as_usual(
    model_file: Path, own_engine_cache: Path
) -> None:
    def greedy(**env: str) -> subprocess.CompletedProcess[str]:
        args = ("run", "-m", str(model_file), "--temperature", "0", "-n", "24", QUESTION)
        return run_cli(*args, env=env)

    plain = greedy(LLMCLI_ENGINE_CACHE=str(own_engine_cache / "plain"))
    assert plain.returncode == 0, plain.stderr

    first = greedy(LLMCLI_PROBE_FAULT="repack=SIGILL")
    assert first.returncode == 0, first.stderr
    lines = first.stderr.strip().splitlines()
    assert len(lines) == 1, first.stderr
    assert "SIGILL" in lines[0] and "instead" in lines[0] and "llmcli doctor" in lines[0]
    chosen = load_verdict(model_key(model_file))
    assert chosen is not None and chosen.setup in ("no-repack", "repack-single")
    kept = json.loads((own_engine_cache / "plain" / verdicts_file().name).read_text())
    usual = kept["verdicts"][model_key(model_file)]
    unrepacked = any(p["setup"] == "repack" and not p["repacked"] for p in usual["probes"])
    if chosen.setup == usual["setup"] or (chosen.setup == "no-repack" and unrepacked):
        # The same computation: where nothing is repacked, no-repack is what repack does.
        assert first.stdout == plain.stdout

    second = greedy(LLMCLI_PROBE_FAULT="repack=SIGILL")
    assert second.returncode == 0 and second.stderr == ""
    assert second.stdout == first.stdout
    # Kept: the same setup, chosen without probing the one that died again (only batch
    # costs may be measured again, when the first probes ran on a busy machine).
    kept = load_verdict(model_key(model_file))
    assert kept is not None and kept.setup == chosen.setup
    assert kept.measured_at == chosen.measured_at

    report = json.loads(run_cli("doctor", "--json").stdout)["engine_setup"]
    (entry,) = report["models"]
    assert entry["setup"] in ("no-repack", "repack-single")
    assert "SIGILL" in entry["reason"]
    failed = [p["setup"] for p in entry["probes"] if not p["ok"]]
    assert failed == ["repack"], entry["probes"]  # the reasons, should another probe fail

    forgot = run_cli("doctor", "--recheck")
    assert forgot.returncode == 0 and not verdicts_file().exists()


def test_every_setup_dying_is_one_clear_error(model_file: Path, own_engine_cache: Path) -> None:
    env = {"LLMCLI_PROBE_FAULT": "repack=SIGILL,no-repack=SIGSEGV,repack-single=SIGBUS"}
    proc = run_cli("run", "-m", str(model_file), "-n", "4", "hi", env=env)
    assert proc.returncode == ExitCode.ENGINE_CRASH
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmcli: error: "), proc.stderr
    assert "SIGILL" in lines[0] and "SIGSEGV" in lines[0] and "--force-reinstall" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert issubclass(EngineCrashError, Exception)


def test_a_pinned_setup_is_used_without_probing(model_file: Path, own_engine_cache: Path) -> None:
    env = {"LLMCLI_ENGINE_SETUP": "repack-single", "LLMCLI_PROBE_FAULT": "repack-single=SIGILL"}
    proc = run_cli("run", "-m", str(model_file), "--temperature", "0", "-n", "8", "hi", env=env)
    # The fault hook lives only in probes: no probe ran, so nothing died.
    assert proc.returncode == 0, proc.stderr
    assert not verdicts_file().exists()
    bad = run_cli("run", "-m", str(model_file), "hi", env={"LLMCLI_ENGINE_SETUP": "fast"})
    assert bad.returncode == ExitCode.USAGE
    assert "LLMCLI_ENGINE_SETUP" in bad.stderr and "no-repack" in bad.stderr
    assert setup_named("No-Repack") == NO_REPACK


# -- a fault in a real run ----------------------------------------------------------------


def test_a_crash_mid_answer_is_one_line_and_the_next_run_avoids_that_setup(
    model_file: Path, own_engine_cache: Path
) -> None:
    proc = subprocess.Popen(
        cli_command(
            "run",
            "-m",
            str(model_file),
            "--temperature",
            "0",
            "-n",
            "2000",
            "Write a long story about a dragon.",
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = proc.stdout.read(40)  # the answer is streaming: the engine is mid-decode
    assert first
    proc.send_signal(signal.SIGILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.ENGINE_CRASH
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("llmcli: error: the llama.cpp engine crashed (SIGILL")
    assert (first + out).strip()  # the partial answer stays on stdout

    record = crashes_file().read_text()
    verdict = load_verdict(model_key(model_file))
    assert verdict is not None and record.startswith(f"{verdict.setup}\t")

    after = run_cli("run", "-m", str(model_file), "--temperature", "0", "-n", "8", "hi")
    assert after.returncode == 0, after.stderr
    assert "crashed in an earlier run" in after.stderr
    now = load_verdict(model_key(model_file))
    assert now is not None and now.setup != verdict.setup


def _segfault(record: Path, *, inside_engine_work: bool) -> subprocess.CompletedProcess[str]:
    fault = "ctypes.string_at(0)"
    code = (
        "import ctypes, pathlib\n"
        "from llmcli.engine import crash_guard\n"
        f"crash_guard.guard('testing', pathlib.Path({str(record)!r}), b'x\\tm\\n')\n"
        + (f"with crash_guard.evaluating():\n    {fault}\n" if inside_engine_work else fault)
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_the_crash_handler_reports_a_segfault_in_native_code(tmp_path: Path) -> None:
    proc = _segfault(tmp_path / "c", inside_engine_work=True)
    assert proc.returncode == ExitCode.ENGINE_CRASH
    assert proc.stderr.count("\n") == 1 and "SIGSEGV" in proc.stderr and "testing" in proc.stderr
    assert "the next run will avoid this setup" in proc.stderr
    assert (tmp_path / "c").read_text() == "x\tm\n"


def test_a_fault_outside_the_engines_work_blames_no_setup(tmp_path: Path) -> None:
    # A process damaged elsewhere dies at shutdown: that says nothing about the setup.
    proc = _segfault(tmp_path / "c", inside_engine_work=False)
    assert proc.returncode == ExitCode.ENGINE_CRASH
    assert proc.stderr.count("\n") == 1 and "SIGSEGV" in proc.stderr
    assert "no engine setup is blamed" in proc.stderr
    assert not (tmp_path / "c").exists()


# -- threads and batch costs --------------------------------------------------------------


def test_busy_cores_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMCLI_THREADS")
    monkeypatch.setattr(threads_mod, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads_mod.os, "cpu_count", lambda: 2)
    seen = iter([3, 2, 3, 2, 2, 3, 2, 2])  # runnable tasks, this one included
    monkeypatch.setattr(threads_mod, "_runnable_now", lambda: next(seen))
    choice = threads_mod.choose_threads()
    assert (choice.threads, choice.busy_cores) == (1, 1)
    # A big machine whose other cores are busy still gives this process its two.
    monkeypatch.setattr(threads_mod.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(threads_mod, "_runnable_now", lambda: 31)
    assert threads_mod.choose_threads().threads == 2
    monkeypatch.setenv("LLMCLI_THREADS", "3")
    assert threads_mod.choose_threads().threads == 3


def test_a_spinning_process_is_seen_as_a_busy_core() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert threads_mod.busy_cores() >= 1
    finally:
        spinner.kill()
        spinner.wait()


def test_the_planner_drafts_only_where_this_machine_makes_batches_pay() -> None:
    guess = Guess([1, 2, 3, 4, 5, 6, 7, 8], [6] * 8)
    cheap = DraftPlanner(BatchCosts.measured({s: 1 + 0.1 * (s - 1) for s in BATCH_SIZES}))
    linear = DraftPlanner(BatchCosts.measured({s: float(s) for s in BATCH_SIZES}, batched=False))
    for planner in (cheap, linear):
        planner.chance = dict.fromkeys(planner.chance, 0.9)
        planner.streak = 8
    assert cheap.length(guess, position=100) >= 4
    # One token per engine step (repack-single): a batch is no cheaper than its tokens.
    assert linear.length(guess, position=100) == 0
    assert BatchCosts.measured({1: 1.0}) == BatchCosts()  # incomplete: the reference
    # A table where batching saves nothing was measured on a busy machine: the reference.
    assert BatchCosts.measured({s: float(s) for s in BATCH_SIZES}) == BatchCosts()


def test_batch_costs_are_kept_only_from_a_quiet_machine(own_engine_cache: Path) -> None:
    costs = {s: float(s) * 0.6 for s in BATCH_SIZES}
    probed: list[str] = []

    def probe(setup: EngineSetup) -> ProbeResult:
        probed.append(setup.name)
        return ProbeResult(
            setup.name, True, prompt_tps=100, gen_tps=50, batch_cost=costs, repacked=False
        )

    busy = decide("m", probe=probe, threads=1, quiet=lambda: False)
    assert busy.verdict is not None and busy.verdict.batch_cost == {}
    # Busy again: the verdict stands, nothing is probed.
    assert decide("m", probe=probe, threads=1, quiet=lambda: False).verdict == load_verdict("m")
    assert probed == ["repack"]
    calm = decide("m", probe=probe, threads=1, quiet=lambda: True)
    assert probed == ["repack", "repack"]
    assert calm.verdict is not None and calm.verdict.batch_cost == costs
    # Measured once: kept from then on.
    decide("m", probe=probe, threads=1, quiet=lambda: True)
    assert probed == ["repack", "repack"] and load_verdict("m") == calm.verdict


def test_batch_costs_are_measured_again_only_once(own_engine_cache: Path) -> None:
    probed: list[str] = []

    def unsteady(setup: EngineSetup) -> ProbeResult:
        probed.append(setup.name)  # every probe disturbed: no table
        return ProbeResult(setup.name, True, prompt_tps=100, gen_tps=50, repacked=False)

    decide("m", probe=unsteady, threads=1, quiet=lambda: True)
    decide("m", probe=unsteady, threads=1, quiet=lambda: True)
    decide("m", probe=unsteady, threads=1, quiet=lambda: True)
    assert probed == ["repack", "repack"]  # the choice, then one more try for costs
    kept = load_verdict("m")
    assert kept is not None and BatchCosts.measured(kept.batch_cost) == BatchCosts()
