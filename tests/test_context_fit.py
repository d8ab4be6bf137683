"""A context that fits: run, chat and serve shrink a default context to what fits in
memory and say so; a context the user asked for that would not fit is refused before
loading (exit 12) with the largest that fits; pull and run refuse a Hub model that
cannot fit before downloading it, having read only its header.

Memory is pinned with LLMCLI_MEMORY. The test model (SmolLM2-135M Q4_1) needs 243.6 MB
at the default 4096 tokens and 196.5 MB at 2048 (tests/test_fit.py holds those figures
to what llama.cpp allocates); its weights alone are 96.6 MB.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
from clihelpers import greedy, run_cli
from hubserver import HubServer

from llmcli.commands._context_fit import Wanted, largest
from llmcli.commands._engine_flags import EngineFlags
from llmcli.errors import DoesNotFitError, ExitCode, UsageError
from llmcli.gguf_file.header import read_header

QUESTION = "What is the capital of France?"
TIGHT = {"LLMCLI_MEMORY": "200MB"}  # 2048 tokens fit, 4096 do not
TINY = {"LLMCLI_MEMORY": "50MB"}  # not even the weights fit
HUB_MODEL = "test/SmolLM2-GGUF:Q4_K_M"


def one_error_line(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    assert proc.returncode == ExitCode.DOES_NOT_FIT == 12, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmcli: error: "), lines
    assert all(word in lines[0] for word in words), lines[0]
    assert proc.stdout == ""
    return lines[0]


def test_a_default_context_that_does_not_fit_is_shrunk_and_said(model_file: Path) -> None:
    proc = greedy(model_file, QUESTION, env=TIGHT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "using --ctx 2048: the default 4096 would need 243.6 MB and 200.0 MB" in proc.stderr
    roomy = greedy(model_file, QUESTION, env={"LLMCLI_MEMORY": "16GB"})
    assert roomy.returncode == 0 and "using --ctx" not in roomy.stderr


def test_a_context_asked_for_that_does_not_fit_is_refused_before_loading(
    model_file: Path,
) -> None:
    typed = greedy(model_file, "--ctx", "4096", QUESTION, env=TIGHT)
    one_error_line(typed, "--ctx 4096 does not fit", "243.6 MB", "largest that fits is --ctx 2048")
    # The config file's ctx is asked for too: refused, not shrunk.
    Path(os.environ["LLMCLI_CONFIG"]).write_text("ctx = 4096\n", encoding="utf-8")
    configured = greedy(model_file, QUESTION, env=TIGHT)
    one_error_line(configured, "largest that fits is --ctx 2048")


def test_a_quantized_kv_cache_makes_it_fit(model_file: Path) -> None:
    proc = greedy(
        model_file, "--ctx", "4096", "--cache-type-k", "q8_0", "--cache-type-v", "q8_0",
        QUESTION, env=TIGHT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "using --ctx" not in proc.stderr


def test_weights_that_do_not_fit_are_refused_unless_told_to_try(model_file: Path) -> None:
    refused = greedy(model_file, QUESTION, env=TINY)
    one_error_line(refused, "does not fit in memory at any context", "96.6 MB", "50.0 MB")
    tried = greedy(model_file, "--no-memory-check", QUESTION, env=TINY)
    assert tried.returncode == 0, tried.stderr
    assert tried.stdout.strip()


def test_show_prompt_loads_no_weights_and_is_not_checked(model_file: Path) -> None:
    proc = run_cli("run", "-m", str(model_file), "--show-prompt", QUESTION, env=TINY)
    assert proc.returncode == 0, proc.stderr


def test_serve_plans_every_sequence(model_file: Path) -> None:
    with socket.socket() as probe:  # a free port: refused before it is bound
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    proc = run_cli(
        "serve", "-m", str(model_file), "--ctx", "2048", "--parallel", "2", "--port", port,
        env=TIGHT,
    )  # fmt: skip
    one_error_line(proc, "--ctx 2048 for each of 2 sequences does not fit", "--ctx 1024")


def test_the_largest_per_sequence_context(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = [read_header(model_file)]
    monkeypatch.setenv("LLMCLI_MEMORY", "200MB")
    quiet = Wanted(4096, asked=False, flags=EngineFlags())
    assert largest(headers, quiet, "m", on_disk=False) == 2048
    two = Wanted(4096, asked=False, flags=EngineFlags(), sequences=2)
    assert largest(headers, two, "m", on_disk=False) == 1024
    q8 = EngineFlags(cache_type_k="q8_0", cache_type_v="q8_0")
    assert largest(headers, Wanted(4096, asked=True, flags=q8), "m", on_disk=True) == 4096
    with pytest.raises(DoesNotFitError, match="nothing was downloaded"):
        largest(headers, Wanted(4096, asked=True, flags=EngineFlags()), "m", on_disk=False)
    monkeypatch.setenv("LLMCLI_MEMORY", "plenty")
    with pytest.raises(UsageError, match="LLMCLI_MEMORY"):
        largest(headers, quiet, "m", on_disk=True)


# -- before a download ------------------------------------------------------------------


def _cached_repos() -> list[str]:
    cache = Path(os.environ["HF_HUB_CACHE"])
    return sorted(p.name for p in cache.glob("models--*")) if cache.is_dir() else []


def _header_bytes_only(hub: HubServer, model_file: Path) -> None:
    served = sum(n for path, n in hub.sent if "/resolve/" in path)
    header = read_header(model_file).data_start
    assert header <= served <= 2 * header
    assert _cached_repos() == []


def test_pull_refuses_a_model_that_cannot_fit_after_reading_only_its_header(
    hub: HubServer, model_file: Path
) -> None:
    refused = run_cli("pull", HUB_MODEL, env=TINY)
    line = one_error_line(refused, HUB_MODEL, "at any context", "nothing was downloaded")
    assert "--no-memory-check" in line
    _header_bytes_only(hub, model_file)
    forced = run_cli("pull", "--no-memory-check", HUB_MODEL, env=TINY)
    assert forced.returncode == 0, forced.stderr
    assert Path(forced.stdout.strip()).stat().st_size == model_file.stat().st_size


def test_pull_of_a_model_that_fits_downloads_it(hub: HubServer, model_file: Path) -> None:
    proc = run_cli("pull", HUB_MODEL, env=TIGHT)
    assert proc.returncode == 0, proc.stderr
    served = sum(n for path, n in hub.sent if "/resolve/" in path)
    # The header once more than the file: the plan costs a few MB of a 98 MB download.
    assert served <= model_file.stat().st_size + 2 * read_header(model_file).data_start


def test_run_refuses_before_downloading_a_context_that_cannot_fit(
    hub: HubServer, model_file: Path
) -> None:
    proc = run_cli("run", "-m", HUB_MODEL, "--ctx", "8192", QUESTION, env=TIGHT)
    one_error_line(proc, "--ctx 8192 does not fit", "--ctx 2048", "nothing was downloaded")
    _header_bytes_only(hub, model_file)
    tiny = run_cli("run", "-m", HUB_MODEL, QUESTION, env=TINY)
    one_error_line(tiny, "at any context", "nothing was downloaded")
    assert _cached_repos() == []


def test_keys_and_values_of_different_types_are_counted_apart(model_file: Path) -> None:
    from llmcli.memory_plan import kv_bytes, model_shape

    shape = model_shape([read_header(model_file)])
    f16, q8 = kv_bytes(shape, 4096, "f16"), kv_bytes(shape, 4096, "q8_0")
    mixed = kv_bytes(shape, 4096, "q8_0", "f16")
    # 64-element rows: f16 is 128 bytes a head, q8_0 two 34-byte blocks.
    assert f16 == 4096 * 30 * 2 * 3 * 128 and q8 == 4096 * 30 * 2 * 3 * 68
    assert mixed == (f16 + q8) // 2
