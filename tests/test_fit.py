"""`llmcli fit`: the memory plan from the GGUF header, held to what llama.cpp itself
allocates for the real test model, through the CLI, and from the Hub look-alike without
downloading the model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clihelpers import run_cli
from hubserver import HubServer

from llmcli.errors import ExitCode
from llmcli.gguf_file.header import ArrayInfo, Header, TensorInfo, read_header
from llmcli.humanize import parse_bytes
from llmcli.memory_plan import KV_PAD, compute_bytes, kv_bytes, model_shape, plan
from llmcli.system_memory import _from_meminfo

MIB = 1 << 20
# Loads the model with llama.cpp's own log on, as llmcli loads it (batch 256, flash
# attention); the log on stderr says what llama.cpp allocated.
_LLAMA_LOAD = """
import sys
import llama_cpp
path, n_ctx, kinds = sys.argv[1], int(sys.argv[2]), sys.argv[3]
types = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0,
    "q4_0": llama_cpp.GGML_TYPE_Q4_0}
k, _, v = kinds.partition(",")
llama_cpp.Llama(path, n_ctx=n_ctx, n_batch=256, n_ubatch=256, n_threads=1, flash_attn=True,
    type_k=types[k], type_v=types[v or k], verbose=True).close()
"""
# A cache type for keys and values, or "keys,values".
SETUPS = [(512, "f16"), (2048, "f16"), (8192, "f16"), (2048, "q8_0"), (2048, "q8_0,q4_0")]


def llama_report(model: Path, ctx: int, kind: str) -> dict[str, float]:
    log = subprocess.run(
        [sys.executable, "-c", _LLAMA_LOAD, str(model), str(ctx), kind],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stderr

    def mib(pattern: str) -> float:
        found = re.search(pattern, log)
        assert found is not None, log
        return float(found.group(1))

    return {
        "weights": mib(r"model buffer size =\s*([\d.]+) MiB"),
        "kv": mib(r"llama_kv_cache: size =\s*([\d.]+) MiB"),
        "compute": mib(r"compute buffer size =\s*([\d.]+) MiB"),
    }


@pytest.mark.parametrize(("ctx", "kind"), SETUPS)
def test_plan_agrees_with_what_llama_cpp_allocates(model_file: Path, ctx: int, kind: str) -> None:
    k, _, v = kind.partition(",")
    header = read_header(model_file)
    got = plan([header], ctx=ctx, cache_type=k, cache_type_v=v or None, available=None)
    seen = llama_report(model_file, ctx, kind)
    assert got.weights_bytes / MIB == pytest.approx(seen["weights"], rel=0.05)
    assert got.kv_bytes / MIB == pytest.approx(seen["kv"], rel=0.05)
    # The compute buffer is an estimate, and says so.
    assert got.compute_bytes / MIB == pytest.approx(seen["compute"], rel=0.15)


def test_kv_formula_for_every_cache_type(model_file: Path) -> None:
    shape = model_shape([read_header(model_file)])
    # SmolLM2-135M: 30 layers, 3 key/value heads of 576 / 9 = 64 dimensions.
    assert shape.kv_per_layer == ((192, 192),) * 30
    cells = 2048
    assert kv_bytes(shape, 2048, "f16") == cells * 30 * 2 * 192 * 2
    assert kv_bytes(shape, 2048, "q8_0") == cells * 30 * 2 * 192 // 32 * 34
    assert kv_bytes(shape, 2048, "q4_0") == cells * 30 * 2 * 192 // 32 * 18
    # Cells are padded to 256, as llama.cpp pads them.
    assert kv_bytes(shape, 300, "f16") == kv_bytes(shape, 512, "f16")


def _header(metadata: dict[str, object]) -> Header:
    tensors = (TensorInfo("token_embd.weight", (64, 100), 1),)  # f16: 12,800 bytes
    return Header(3, {"general.architecture": "test", **metadata}, tensors)


def test_per_layer_heads_key_length_and_recurrent_layers() -> None:
    # A hybrid: layers without attention have no key/value heads, and the head size is
    # given by key_length rather than embedding_length / head_count.
    header = _header(
        {
            "test.block_count": 4,
            "test.embedding_length": 256,
            "test.attention.head_count": 8,
            "test.attention.head_count_kv": ArrayInfo(5, 4, (2, 0, 0, 2)),
            "test.attention.key_length": 128,
            "test.attention.value_length": 64,
            "test.ssm.state_size": 16,
        }
    )
    shape = model_shape([header])
    assert shape.kv_per_layer == ((256, 128), (0, 0), (0, 0), (256, 128))
    assert kv_bytes(shape, KV_PAD, "f16") == KV_PAD * 2 * (256 + 128) * 2
    assert any("recurrent" in note for note in shape.notes)


def test_sliding_window_is_counted_whole_and_said() -> None:
    header = _header(
        {
            "test.block_count": 2,
            "test.embedding_length": 64,
            "test.attention.head_count": 4,
            "test.attention.sliding_window": 512,
        }
    )
    shape = model_shape([header])
    assert kv_bytes(shape, 4096) == 4096 * 2 * (64 + 64) * 2
    assert any("sliding-window" in note for note in shape.notes)


def test_largest_context_that_fits_and_the_changes(model_file: Path) -> None:
    header = read_header(model_file)
    available = 200 * 10**6
    got = plan([header], ctx=4096, available=available)
    assert got.fits is False and got.max_ctx is not None
    assert plan([header], ctx=got.max_ctx, available=available).fits
    assert not plan([header], ctx=got.max_ctx + KV_PAD, available=available).fits
    changes = {c.what: c for c in got.changes}
    assert changes[f"--ctx {got.max_ctx}"].fits
    assert changes["a q4_0 KV cache"].fits
    assert any(c.what.startswith("a quantization of at most") for c in got.changes)
    # Room for the whole trained context: the largest is the trained one.
    assert plan([header], ctx=512, available=10**12).max_ctx == 8192
    # Not even the weights fit: no context does.
    assert plan([header], ctx=512, available=10**6).max_ctx is None


def test_compute_estimate_grows_with_the_vocabulary(model_file: Path) -> None:
    shape = model_shape([read_header(model_file)])
    # One micro-batch of 256 logits over 49,152 tokens in f32 is most of it.
    assert compute_bytes(shape, 4096) > 256 * 49152 * 4


def test_sizes_as_typed_and_meminfo() -> None:
    assert parse_bytes("16GB") == 16 * 10**9
    assert parse_bytes("8GiB") == 8 << 30
    assert parse_bytes("512 mb") == 512 * 10**6
    assert parse_bytes("1.5G") == 1_500_000_000
    assert parse_bytes("1000") == 1000
    assert parse_bytes("lots") is None
    assert parse_bytes("8i") is None
    text = "MemTotal:       16318412 kB\nMemFree: 1 kB\nMemAvailable:    9935712 kB\n"
    assert _from_meminfo(text) == 9935712 * 1024
    assert _from_meminfo("MemTotal: 1 kB\n") is None


# -- through the CLI ---------------------------------------------------------------------


def test_fit_plain_and_json(model_file: Path) -> None:
    plain = run_cli("fit", str(model_file), "--ctx", "2048", "--memory", "16GB")
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert lines[0] == str(model_file)
    assert re.match(r"^weights\s+96\.6 MB$", lines[2])
    assert any(line.startswith("KV cache (f16, 2,048 tokens, trained on 8,192)") for line in lines)
    assert any("compute buffer (estimate)" in line for line in lines)
    assert lines[-1] == "fits: 196.5 MB of 16.0 GB; up to --ctx 8192 fits"

    data = json.loads(
        run_cli("fit", str(model_file), "--ctx", "2048", "--memory", "16GB", "--json").stdout
    )
    expected = plan([read_header(model_file)], ctx=2048, available=16 * 10**9)
    assert data == {"model": str(model_file), **expected.as_dict()}
    assert data["kv_bytes"] == 45 * MIB and data["fits"] is True


def test_fit_cache_types_of_keys_and_values(model_file: Path) -> None:
    def fit(*flags: str) -> dict[str, object]:
        proc = run_cli(
            "fit", str(model_file), "--ctx", "4096", "--memory", "16GB", "--json", *flags
        )
        assert proc.returncode == 0, proc.stderr
        data: dict[str, object] = json.loads(proc.stdout)
        return data

    def planned(k: str, v: str) -> dict[str, object]:
        got = plan([read_header(model_file)], ctx=4096, cache_type=k, cache_type_v=v,
                   available=16 * 10**9)  # fmt: skip
        return {"model": str(model_file), **got.as_dict()}

    assert fit("--cache-type-k", "q8_0", "--cache-type-v", "q4_0") == planned("q8_0", "q4_0")
    # --cache-type sets both; the other two flags override one of them.
    assert fit("--cache-type", "q8_0") == planned("q8_0", "q8_0")
    assert fit("--cache-type", "q8_0", "--cache-type-v", "f16") == planned("q8_0", "f16")
    assert fit("--cache-type-k", "q4_0") == planned("q4_0", "f16")
    plain = run_cli("fit", str(model_file), "--memory", "16GB", "--cache-type-k", "q8_0")
    assert "KV cache (K q8_0, V f16, 4,096 tokens" in plain.stdout
    wrong = run_cli("fit", str(model_file), "--cache-type-v", "q5_1")
    assert wrong.returncode == ExitCode.USAGE and "--cache-type-v" in wrong.stderr


def test_fit_against_the_memory_available_now(model_file: Path) -> None:
    proc = run_cli("fit", str(model_file), "--json")
    assert proc.returncode in (0, ExitCode.DOES_NOT_FIT)
    data = json.loads(proc.stdout)
    if Path("/proc/meminfo").exists():
        assert data["available_bytes"] > 0
        assert data["fits"] is (proc.returncode == 0)


def test_context_beyond_the_trained_one(model_file: Path) -> None:
    proc = run_cli("fit", str(model_file), "--ctx", "16384", "--memory", "16GB", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["beyond_trained"] is True and data["trained_ctx"] == 8192
    assert data["max_ctx"] == 8192  # what fits is capped at the trained context
    assert "beyond the 8192 tokens the model was trained on" in proc.stderr


def test_does_not_fit_exits_12_with_the_plan_on_stdout(model_file: Path) -> None:
    proc = run_cli("fit", str(model_file), "--memory", "200MB")
    assert proc.returncode == ExitCode.DOES_NOT_FIT == 12
    assert "does not fit: needs 243.6 MB, 200.0 MB available" in proc.stdout
    assert "try --ctx 2048 (needs 196.5 MB)" in proc.stdout
    assert "llmcli: error:" in proc.stderr and "(try --ctx 2048)" in proc.stderr
    assert "error" not in proc.stdout


def test_unknown_model_and_bad_size(model_file: Path, tmp_path: Path) -> None:
    missing = run_cli("fit", str(tmp_path / "nope.gguf"))
    assert missing.returncode == ExitCode.MODEL_NOT_FOUND, missing.stderr
    assert missing.stdout == ""
    bad = run_cli("fit", str(model_file), "--memory", "plenty")
    assert bad.returncode == ExitCode.USAGE
    assert "--memory" in bad.stderr


# -- from the Hub, without downloading ----------------------------------------------------


def _cached_repos() -> list[str]:
    cache = Path(os.environ["HF_HUB_CACHE"])
    return sorted(p.name for p in cache.glob("models--*")) if cache.is_dir() else []


def test_fit_from_the_hub_reads_only_the_header(hub: HubServer, model_file: Path) -> None:
    proc = run_cli("fit", "test/SmolLM2-GGUF:Q4_K_M", "--memory", "16GB", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    local = plan([read_header(model_file)], ctx=4096, available=16 * 10**9)
    assert data == {"model": "test/SmolLM2-GGUF:Q4_K_M", **local.as_dict()}

    served = sum(n for path, n in hub.sent if "/resolve/" in path)
    header = read_header(model_file).data_start  # 1.8 MB of a 98 MB file
    assert header <= served <= 2 * header
    assert served < model_file.stat().st_size / 20
    assert "was not downloaded" in proc.stderr
    assert _cached_repos() == []


def test_fit_from_the_hub_errors(hub: HubServer) -> None:
    missing = run_cli("fit", "test/absent-GGUF:Q4_K_M")
    assert missing.returncode == ExitCode.MODEL_NOT_FOUND, missing.stderr
    no_quant = run_cli("fit", "test/SmolLM2-GGUF:Q8_0")
    assert no_quant.returncode == ExitCode.MODEL_NOT_FOUND, no_quant.stderr
    offline = run_cli("fit", "test/SmolLM2-GGUF:Q4_K_M", env={"HF_HUB_OFFLINE": "1"})
    assert offline.returncode == ExitCode.NETWORK, offline.stderr
    assert hub.sent == []
    assert _cached_repos() == []


def test_fit_uses_the_cached_copy_without_the_network(hub: HubServer) -> None:
    assert run_cli("pull", "test/SmolLM2-GGUF:Q4_K_M").returncode == 0
    hub.requests.clear()
    proc = run_cli("fit", "test/SmolLM2-GGUF:Q4_K_M", "--json", env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode in (0, ExitCode.DOES_NOT_FIT), proc.stderr
    assert json.loads(proc.stdout)["weights_bytes"] > 0
    assert hub.requests == []
