"""The memory plan with layers on a GPU: the split between RAM and GPU memory follows
llama.cpp's placement of layers, `fit --gpu-memory` plans for a GPU this machine may not
have, and on a GPU build the plan is held to what llama.cpp allocates there (those tests
run only where this llama.cpp build sees a GPU)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clihelpers import run_cli

from llmcli.errors import ExitCode
from llmcli.gguf_file.header import read_header
from llmcli.gguf_file.info import ggml_type_bytes
from llmcli.memory_plan import (
    Offload,
    gpu_layer_indices,
    gpu_layers_that_fit,
    host_compute_bytes,
    model_shape,
    plan,
)

MIB = 1 << 20
GB = 10**9


def _embeddings_bytes(model: Path) -> int:
    tensor = next(t for t in read_header(model).tensors if t.name == "token_embd.weight")
    return ggml_type_bytes(tensor.ggml_type, tensor.n_elements) or 0


def test_layers_go_to_the_gpu_last_first_with_the_output_layer() -> None:
    # llama.cpp: i_gpu_start = n_layer + 1 - n_gpu_layers; index n_layer is the output.
    assert list(gpu_layer_indices(30, -1)) == list(range(31))
    assert list(gpu_layer_indices(30, 100)) == list(range(31))
    assert list(gpu_layer_indices(30, 1)) == [30]
    assert list(gpu_layer_indices(30, 5)) == [26, 27, 28, 29, 30]
    assert list(gpu_layer_indices(30, 0)) == []


def test_every_layer_on_the_gpu(model_file: Path) -> None:
    header = read_header(model_file)
    shape = model_shape([header])
    embeddings = _embeddings_bytes(model_file)
    got = plan([header], ctx=2048, available=16 * GB, offload=Offload(-1, 8 * GB))
    assert got.offloaded_layers == got.model_layers == shape.layers + 1
    assert got.gpu_kv_bytes == got.kv_bytes
    # The test model's output layer is tied to its token embeddings: those stay in RAM
    # and a copy goes to the GPU, so the GPU holds as much as all the weights.
    assert "output.weight" not in {t.name for t in header.tensors}
    assert got.gpu_weights_bytes == got.weights_bytes
    assert got.gpu_bytes == got.weights_bytes + got.kv_bytes + got.compute_bytes
    assert got.ram_bytes == embeddings + host_compute_bytes(shape, 2048)
    assert got.fits is True
    assert any("GPU holds a copy" in note for note in got.notes)


def test_some_layers_on_the_gpu(model_file: Path) -> None:
    header = read_header(model_file)
    shape = model_shape([header])
    all_on_gpu = plan([header], ctx=2048, available=16 * GB, offload=Offload(-1, 8 * GB))
    some = plan([header], ctx=2048, available=16 * GB, offload=Offload(10, 8 * GB))
    assert some.offloaded_layers == 10
    # Nine repeating layers and the output layer: nine layers' cache.
    assert some.gpu_kv_bytes * shape.layers == all_on_gpu.kv_bytes * 9
    assert some.gpu_weights_bytes < all_on_gpu.gpu_weights_bytes
    assert some.ram_bytes > all_on_gpu.ram_bytes
    none = plan([header], ctx=2048, available=16 * GB, offload=Offload(0, 8 * GB))
    alone = plan([header], ctx=2048, available=16 * GB)
    assert none.gpu_bytes == 0 and none.total_bytes == alone.total_bytes


def test_too_little_gpu_memory_suggests_fewer_layers_that_do_fit(model_file: Path) -> None:
    header = read_header(model_file)
    gpu = Offload(-1, 200 * MIB)
    got = plan([header], ctx=8192, available=16 * GB, offload=gpu)
    assert got.fits is False and got.gpu_bytes > gpu.available
    fewer = gpu_layers_that_fit([header], ctx=8192, available=16 * GB, offload=gpu)
    assert fewer is not None and 0 < fewer < got.model_layers
    assert f"--gpu-layers {fewer}" in [c.what for c in got.changes]
    assert plan([header], ctx=8192, available=16 * GB, offload=Offload(fewer, 200 * MIB)).fits
    assert not plan(
        [header], ctx=8192, available=16 * GB, offload=Offload(fewer + 1, 200 * MIB)
    ).fits
    # Unknown GPU memory: no verdict rather than a guess.
    unknown = plan([header], ctx=8192, available=16 * GB, offload=Offload(-1, None))
    assert unknown.fits is None


def test_fit_plans_for_a_gpu_of_a_given_size(model_file: Path) -> None:
    small = run_cli("fit", str(model_file), "--ctx", "8192", "--memory", "16GB",
                    "--gpu-memory", "200MiB", "--json")  # fmt: skip
    assert small.returncode == ExitCode.DOES_NOT_FIT, small.stderr
    data = json.loads(small.stdout)
    assert data["fits"] is False and data["gpu_available_bytes"] == 200 * MIB
    fewer = next(c["what"] for c in data["changes"] if c["what"].startswith("--gpu-layers"))
    retried = run_cli("fit", str(model_file), "--ctx", "8192", "--memory", "16GB",
                      "--gpu-memory", "200MiB", *fewer.split())  # fmt: skip
    assert retried.returncode == 0, retried.stderr
    assert re.search(r"on the GPU \(\d+ of \d+ layers\)", retried.stdout)
    assert retried.stdout.strip().splitlines()[-1].startswith("fits: ")
    bad = run_cli("fit", str(model_file), "--gpu-memory", "a lot")
    assert bad.returncode == ExitCode.USAGE
    assert bad.stderr.count("\n") == 1 and "--gpu-memory" in bad.stderr


# -- on a GPU build: the plan against llama.cpp's own allocations -------------------------


def _gpu_build() -> bool:
    from llmcli.engine.system_info import gpus

    return bool(gpus())


needs_gpu = pytest.mark.skipif(not _gpu_build(), reason="this llama.cpp build sees no GPU")

_LLAMA_LOAD = """
import sys
import llama_cpp
path, n_ctx, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llama_cpp.Llama(path, n_ctx=n_ctx, n_batch=256, n_ubatch=256, n_threads=1, flash_attn=True,
    n_gpu_layers=layers, verbose=True).close()
"""


def _buffers(log: str, what: str) -> tuple[float, float]:
    """(GPU, host) MiB of llama.cpp's "<buffer> <what> buffer size = N MiB" lines."""
    gpu = host = 0.0
    for name, size in re.findall(rf"(\S+) {what} buffer size =\s*([\d.]+) MiB", log):
        if name.startswith("CPU") or name.endswith("_Host"):
            host += float(size)
        else:
            gpu += float(size)
    return gpu, host


@needs_gpu
@pytest.mark.parametrize("layers", [-1, 2])
@pytest.mark.parametrize("ctx", [512, 2048, 8192])
def test_gpu_plan_agrees_with_what_llama_cpp_allocates(
    model_file: Path, ctx: int, layers: int
) -> None:
    log = subprocess.run(
        [sys.executable, "-c", _LLAMA_LOAD, str(model_file), str(ctx), str(layers)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stderr
    got = plan([read_header(model_file)], ctx=ctx, available=None, offload=Offload(layers, None))
    gpu_weights, ram_weights = _buffers(log, "model")
    gpu_kv, _ = _buffers(log, "KV")
    gpu_compute, _ = _buffers(log, "compute")
    offloaded = re.search(r"offloaded (\d+)/(\d+) layers to GPU", log)
    assert offloaded is not None, log
    print(
        f"ctx {ctx} layers {layers}: weights {got.gpu_weights_bytes / MIB:.1f}/{gpu_weights} "
        f"KV {got.gpu_kv_bytes / MIB:.1f}/{gpu_kv} compute "
        f"{(got.gpu_bytes - got.gpu_weights_bytes - got.gpu_kv_bytes) / MIB:.1f}/{gpu_compute}"
        f" RAM weights {(got.weights_bytes - got.gpu_weights_bytes) / MIB:.1f}/{ram_weights}"
    )
    assert (got.offloaded_layers, got.model_layers) == tuple(map(int, offloaded.groups()))
    assert got.gpu_weights_bytes / MIB == pytest.approx(gpu_weights, rel=0.05)
    assert got.gpu_kv_bytes / MIB == pytest.approx(gpu_kv, rel=0.05)
    gpu_compute_planned = got.gpu_bytes - got.gpu_weights_bytes - got.gpu_kv_bytes
    assert gpu_compute_planned / MIB == pytest.approx(gpu_compute, rel=0.25)


def _gpu_memory_for_some_layers(model: Path) -> tuple[int, int]:
    """A GPU memory size in which not all the test model's layers fit at --ctx 8192, and
    how many do."""
    header = read_header(model)
    whole = plan([header], ctx=8192, available=16 * GB, offload=Offload(-1, None))
    size = whole.gpu_bytes * 8 // 10
    fewer = gpu_layers_that_fit([header], ctx=8192, available=16 * GB, offload=Offload(-1, size))
    assert fewer is not None and 0 < fewer < whole.model_layers
    return size, fewer


def test_layers_that_fit_are_chosen_when_the_user_left_it(
    model_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmcli.commands import _context_fit
    from llmcli.commands._context_fit import Wanted, with_gpu_layers_that_fit
    from llmcli.commands._engine_flags import EngineFlags

    size, fewer = _gpu_memory_for_some_layers(model_file)
    # The GPU as a GPU build reports it; the real one is held to llama.cpp below.
    monkeypatch.setattr(_context_fit, "offload", lambda layers: Offload(-1, size))
    monkeypatch.setenv("LLMCLI_MEMORY", "16GB")
    headers = [read_header(model_file)]
    left = Wanted(8192, asked=True, flags=EngineFlags())
    chosen = with_gpu_layers_that_fit(headers, left, on_disk=True)
    assert chosen.gpu_layers == fewer
    assert f"offloading {fewer} of 31 layers to the GPU" in capsys.readouterr().err
    mine = Wanted(8192, asked=True, flags=EngineFlags(), gpu_layers=-1)
    assert with_gpu_layers_that_fit(headers, mine, on_disk=True) == mine


@needs_gpu
def test_run_offloads_the_layers_that_fit(model_file: Path) -> None:
    size, expected = _gpu_memory_for_some_layers(model_file)
    env = {"LLMCLI_GPU_MEMORY": str(size), "LLMCLI_MEMORY": "16GB"}
    proc = run_cli("run", "-m", str(model_file), "--ctx", "8192", "-n", "4", "--verbose",
                   "--temperature", "0", "Hello", env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"offloading {expected} of " in proc.stderr, proc.stderr
    assert re.search(rf"offloaded {expected}/\d+ layers to GPU", proc.stderr), proc.stderr
    asked = run_cli("run", "-m", str(model_file), "--ctx", "8192", "-n", "4",
                    "--gpu-layers", "-1", "Hello", env=env)  # fmt: skip
    assert asked.returncode == ExitCode.DOES_NOT_FIT, asked.stderr
    assert f"--gpu-layers {expected}" in asked.stderr
