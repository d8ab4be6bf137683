"""A projector made for another model, or a file that is no projector, is refused from the
GGUF headers alone, before the model loads (llmcli.projector_files.check_projector): the
width of the projector's embeddings (clip.cpp's clip_n_mmproj_embd) against the width the
text model takes in. Real projector files written by tests/projector.py, the real test
model; `run`, `chat` and `serve` as subprocesses."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from clihelpers import run_cli
from projector import TEXT_EMBD, write_audio_projector, write_png, write_projector, write_wav

from llmcli.errors import ModelInvalidError
from llmcli.gguf_file.header import Header, TensorInfo, read_header
from llmcli.projector_files import (
    check_projector,
    model_input_width,
    projector_output_width,
)

# Another model's width: SmolLM2-360M's hidden size.
OTHER_EMBD = 960
# What llama.cpp's loader logs (seen with --verbose) once it reads the model's weights.
MODEL_LOAD_LOG = "llama_model_loader"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("projectors")
    write_projector(folder / "mmproj-vision.gguf")
    write_audio_projector(folder / "mmproj-audio.gguf")
    write_projector(folder / "mmproj-vision-960.gguf", width=OTHER_EMBD)
    write_audio_projector(folder / "mmproj-audio-960.gguf", width=OTHER_EMBD)
    write_png(folder / "one.png")
    write_wav(folder / "a440.wav")
    return folder


def _header(metadata: dict[str, object], tensors: dict[str, tuple[int, ...]]) -> Header:
    return Header(3, dict(metadata), tuple(TensorInfo(n, s, 0) for n, s in tensors.items()))


def _vision(kind: str, tensors: dict[str, tuple[int, ...]]) -> Header:
    meta = {"general.architecture": "clip", "clip.projector_type": kind}
    return _header({**meta, "clip.has_vision_encoder": True}, tensors)


def test_the_fixture_projectors_are_as_wide_as_the_test_model(
    model_file: Path, files: Path
) -> None:
    assert model_input_width(read_header(model_file)) == TEXT_EMBD
    for name in ("mmproj-vision.gguf", "mmproj-audio.gguf"):
        assert projector_output_width(read_header(files / name)) == TEXT_EMBD
        check_projector(model_file, files / name)
    for name in ("mmproj-vision-960.gguf", "mmproj-audio-960.gguf"):
        assert projector_output_width(read_header(files / name)) == OTHER_EMBD


@pytest.mark.parametrize(
    ("header", "width"),
    [
        # LLaVA's MLP: mm.2.weight is (4096 out, 1024 in) in PyTorch, stored reversed.
        (_vision("mlp", {"mm.0.weight": (1024, 4096), "mm.2.weight": (4096, 4096)}), 4096),
        (_vision("mlp", {"mm.0.weight": (1024, 2048), "mm.2.weight": (2048, 3072)}), 3072),
        # Yi-style LLaVA (mm.3 present): clip.cpp reads it as mlp_norm, its width mm.3.bias.
        (_vision("mlp", {"mm.3.weight": (4096, 7168), "mm.3.bias": (7168,)}), 7168),
        (_vision("qwen2.5vl_merger", {"mm.2.weight": (5120, 2048), "mm.2.bias": (2048,)}), 2048),
        # Qwen3-VL: the main path and each deepstack layer's, side by side.
        (
            _vision(
                "qwen3vl_merger",
                {
                    "mm.2.bias": (2048,),
                    "v.deepstack.5.fc2.weight": (4096, 2048),
                    "v.deepstack.11.fc2.weight": (4096, 2048),
                    "v.deepstack.17.fc2.weight": (4096, 2048),
                },
            ),
            4 * 2048,
        ),
        (_vision("idefics3", {"mm.model.fc.weight": (12288, 576)}), 576),
        (_vision("gemma3", {"mm.input_projection.weight": (2560, 1152)}), 2560),
        # Qwen2.5-Omni's audio encoder alone: the qwen2a projection.
        (
            _header(
                {"clip.projector_type": "qwen2.5o", "clip.has_audio_encoder": True},
                {"mm.a.fc.weight": (1280, 3584)},
            ),
            3584,
        ),
        # Per-encoder types; the vision encoder's width is the one mtmd compares.
        (
            _header(
                {
                    "clip.has_vision_encoder": True,
                    "clip.has_audio_encoder": True,
                    "clip.vision.projector_type": "mlp",
                    "clip.audio.projector_type": "ultravox",
                },
                {"mm.2.weight": (3072, 3072), "mm.a.mlp.2.weight": (1024, 3072)},
            ),
            3072,
        ),
        # A type this does not know, or its tensor missing: left to mtmd.
        (_vision("cogvlm", {"mm.2.weight": (4096, 4096)}), None),
        (_vision("mlp", {"mm.0.weight": (1024, 4096)}), None),
        (_header({"clip.projector_type": "mlp"}, {"mm.2.weight": (4096, 4096)}), None),
    ],
)
def test_the_output_width_follows_clip_cpp_per_projector_type(
    header: Header, width: int | None
) -> None:
    assert projector_output_width(header) == width


def test_the_models_input_width_counts_its_deepstack_layers() -> None:
    meta = {"general.architecture": "qwen3vl", "qwen3vl.embedding_length": 2048}
    assert model_input_width(_header(meta, {})) == 2048
    deep = {**meta, "qwen3vl.n_deepstack_layers": 3}
    assert model_input_width(_header(deep, {})) == 4 * 2048
    assert model_input_width(_header({"general.architecture": "llama"}, {})) is None


def test_check_projector_refuses_another_models_projector_and_a_non_projector(
    model_file: Path, files: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelInvalidError, match=f"{OTHER_EMBD} wide, .* takes {TEXT_EMBD}"):
        check_projector(model_file, files / "mmproj-audio-960.gguf")
    with pytest.raises(ModelInvalidError, match="architecture is llama, not clip"):
        check_projector(model_file, model_file)
    notes = tmp_path / "mmproj-notes.gguf"
    notes.write_text("not a GGUF file\n")
    with pytest.raises(ModelInvalidError, match="not a projector"):
        check_projector(model_file, notes)


@pytest.mark.parametrize(
    ("projector", "attachment"),
    [("mmproj-vision-960.gguf", "one.png"), ("mmproj-audio-960.gguf", "a440.wav")],
)
def test_run_refuses_another_models_projector_before_loading_the_model(
    model_file: Path, files: Path, projector: str, attachment: str
) -> None:
    args = ("run", "-m", str(model_file), "--mmproj", str(files / projector))
    args += ("-a", str(files / attachment), "-n", "1", "hello")
    proc = run_cli(*args)
    assert proc.returncode == 4, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"{projector} is not a projector for this model" in lines[0]
    assert f"{OTHER_EMBD} wide" in lines[0] and proc.stdout == ""
    # With llama.cpp's log shown, the model's loading would show: it never starts.
    verbose = run_cli(*args, "--verbose")
    assert verbose.returncode == 4, verbose.stderr
    assert MODEL_LOAD_LOG not in verbose.stderr
    # ... where the projector that fits it goes on to load the model.
    fits = projector.replace("-960", "")
    loaded = run_cli(*args[:3], "--mmproj", str(files / fits), *args[5:], "--verbose")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert MODEL_LOAD_LOG in loaded.stderr


def test_run_refuses_a_model_file_given_as_its_projector(model_file: Path, files: Path) -> None:
    proc = run_cli(
        "run", "-m", str(model_file), "--mmproj", str(model_file),
        "-a", str(files / "one.png"), "--verbose", "-n", "1", "hello",
    )  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    assert "is not a projector (mmproj) file: its architecture is llama" in proc.stderr
    assert MODEL_LOAD_LOG not in proc.stderr


@pytest.mark.parametrize("command", ["chat", "serve"])
def test_chat_and_serve_refuse_another_models_projector_before_loading(
    model_file: Path, files: Path, command: str
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    extra = ("--port", str(port)) if command == "serve" else ()
    proc = run_cli(
        command, "-m", str(model_file), "--mmproj", str(files / "mmproj-vision-960.gguf"),
        *extra, "--verbose", input="hello\n", timeout=60,
    )  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    assert "mmproj-vision-960.gguf is not a projector for this model" in proc.stderr
    assert MODEL_LOAD_LOG not in proc.stderr
