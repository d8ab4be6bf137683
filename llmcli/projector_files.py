"""Where a model's projector (mmproj) file is: named with --mmproj, or found beside it.

llama.cpp's converters and the Hub's vision repos name projectors `mmproj-*.gguf` (and
`*mmproj*.gguf`); a model file with one such file in its folder (a download puts the
projector it pulls beside the model) has its projector. No weights are read here.

`check_projector` refuses, from the two files' headers alone, a projector that is not one
or that was made for another model, before either is loaded: llama.cpp's mtmd would only
fail after the model has loaded. The test is mtmd's own (mtmd_context's constructor): the
width of the embeddings the projector puts out (clip.cpp's clip_n_mmproj_embd) must be the
width the text model takes in (llama_model_n_embd_inp).
"""

from __future__ import annotations

from pathlib import Path

from llmcli.errors import LlmcliError, ModelInvalidError, ModelNotFoundError, UsageError
from llmcli.gguf_file.header import Header, TensorInfo, int_value, read_header


def is_projector_name(name: str) -> bool:
    lowered = name.lower()
    return lowered.endswith(".gguf") and "mmproj" in lowered


def projector_beside(model: Path) -> Path | None:
    """The projector in the model file's folder; with several, the one whose name shares
    the longest start with the model's (a folder of many models may hold several)."""
    try:
        candidates = sorted(
            p for p in model.parent.iterdir() if is_projector_name(p.name) and p != model
        )
    except OSError:
        return None
    if not candidates:
        return None
    stem = model.name.lower()

    def shared(path: Path) -> int:
        name = path.name.lower().replace("mmproj-", "").replace("-mmproj", "")
        n = 0
        for a, b in zip(name, stem, strict=False):
            if a != b:
                break
            n += 1
        return n

    return max(candidates, key=shared)


def projector_for(model: Path, given: Path | None) -> Path | None:
    """The projector to use with `model`: `given` (which must exist), else one beside it."""
    if given is not None:
        given = given.expanduser()
        if not given.is_file():
            raise ModelNotFoundError(f"no projector file at {given}")
        if not is_projector_name(given.name) and given.suffix.lower() != ".gguf":
            raise UsageError(f"--mmproj wants a projector GGUF file, not {given.name}")
        return given
    return projector_beside(model)


def projector_inputs(path: Path) -> list[str]:
    """What a projector takes ("vision", "audio"), from its GGUF header's clip keys;
    empty for a file that cannot be read as one."""
    try:
        metadata = read_header(path).metadata
    except (LlmcliError, OSError):
        return []
    keys = (("vision", "clip.has_vision_encoder"), ("audio", "clip.has_audio_encoder"))
    return [kind for kind, key in keys if metadata.get(key) is True]


# -- does a projector fit a model ---------------------------------------------------------

# The tensor whose shape gives a projector's output width, and which of its dimensions
# (ggml's ne, the order GGUF stores them in), per projector type: clip.cpp's
# clip_n_mmproj_embd with the tensor names its load_tensors gives those fields. A type not
# here is checked by mtmd itself, once the model is loaded. (`clip.*.projection_dim` is no
# guide: LLaVA-1.5's projector writes CLIP's own 768 there, for a 4096-wide text model.)
_OUTPUT: dict[str, tuple[str, int]] = {
    "mlp": ("mm.2.weight", 1),
    "phi4": ("mm.2.weight", 1),
    "pixtral": ("mm.2.weight", 1),
    "lightonocr": ("mm.2.weight", 1),
    "lfm2": ("mm.2.weight", 1),
    "kimivl": ("mm.2.weight", 1),
    "kimik25": ("mm.2.weight", 1),
    "paddleocr": ("mm.2.weight", 1),
    "ldp": ("mm.model.mb_block.1.block.2.1.bias", 0),
    "ldpv2": ("mm.model.peg.0.bias", 0),
    "resampler": ("resampler.proj.weight", 0),  # MiniCPM-V
    "qwen2vl_merger": ("mm.2.bias", 0),
    "qwen2.5vl_merger": ("mm.2.bias", 0),
    "qwen3vl_merger": ("mm.2.bias", 0),  # times 1 + its deepstack layers
    "gemma3": ("mm.input_projection.weight", 0),
    "gemma3nv": ("mm.input_projection.weight", 0),
    "gemma4v": ("mm.input_projection.weight", 1),
    "gemma4uv": ("mm.input_projection.weight", 1),
    "idefics3": ("mm.model.fc.weight", 1),
    "internvl": ("mm.model.mlp.3.weight", 1),
    "llama4": ("mm.model.fc.weight", 1),
    "ultravox": ("mm.a.mlp.2.weight", 1),
    "voxtral": ("mm.a.mlp.2.weight", 1),
    "glma": ("mm.a.mlp.2.weight", 1),
    "qwen3a": ("mm.a.mlp.2.weight", 1),
    "qwen2a": ("mm.a.fc.weight", 1),
}
# One file for both encoders of Qwen2.5-Omni: mtmd reads it as one type per encoder.
_OMNI = {"vision": "qwen2.5vl_merger", "audio": "qwen2a"}
_HINT = "a projector (mmproj) must be made for the same model family and size"


def projector_output_width(header: Header) -> int | None:
    """The width of the embeddings a projector puts out, from its header; None when its
    type is not one this knows (mtmd then checks it). With both encoders, mtmd wants them
    to agree: the vision encoder's width is the one it compares."""
    meta = header.metadata
    tensors = {t.name: t for t in header.tensors}
    widths = []
    for kind in ("vision", "audio"):
        if meta.get(f"clip.has_{kind}_encoder") is not True:
            continue
        kind_type = meta.get("clip.projector_type") or meta.get(f"clip.{kind}.projector_type")
        if kind_type == "qwen2.5o":
            kind_type = _OMNI[kind]
        widths.append(_output_width(str(kind_type), tensors))
    return widths[0] if widths else None


def _output_width(kind_type: str, tensors: dict[str, TensorInfo]) -> int | None:
    found = _OUTPUT.get(kind_type)
    if kind_type == "mlp" and "mm.3.weight" in tensors:
        found = ("mm.3.bias", 0)  # Yi-style LLaVA, which clip.cpp loads as mlp_norm
    if found is None:
        return None
    name, dim = found
    tensor = tensors.get(name)
    if tensor is None or len(tensor.shape) <= dim:
        return None
    width = tensor.shape[dim]
    if kind_type == "qwen3vl_merger":
        deepstack = {n.split(".")[2] for n in tensors if n.startswith("v.deepstack.")}
        width *= 1 + len(deepstack)
    return width


def model_input_width(header: Header) -> int | None:
    """The width of the embeddings a text model takes in (llama.cpp's n_embd_inp): its
    embedding length, once more for each deepstack layer (Qwen3-VL)."""
    meta = header.metadata
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or arch == "gemma4-assistant":  # takes another width
        return None
    width = int_value(meta.get(f"{arch}.embedding_length"))
    if width is None:
        return None
    return width * (1 + (int_value(meta.get(f"{arch}.n_deepstack_layers")) or 0))


def check_projector(model: Path, projector: Path) -> None:
    """Refuse a file that is not a projector, or a projector whose embeddings are not as
    wide as the model's (made for another model), from the headers alone: ModelInvalidError.
    What the headers cannot tell, mtmd tells when the projector loads."""
    try:
        header = read_header(projector)
    except ModelInvalidError as exc:
        raise ModelInvalidError(
            f"{projector.name} is not a projector (mmproj) file: {exc.message}"
        ) from exc
    arch = header.metadata.get("general.architecture")
    if arch != "clip":
        raise ModelInvalidError(
            f"{projector.name} is not a projector (mmproj) file: its architecture is "
            f"{arch or 'not given'}, not clip",
            hint="--mmproj wants the projector GGUF that goes with the model",
        )
    given = projector_output_width(header)
    if given is None:
        return
    wanted = model_input_width(read_header(model))
    if wanted is not None and given != wanted:
        raise ModelInvalidError(
            f"{projector.name} is not a projector for this model: it makes embeddings "
            f"{given} wide, {model.name} takes {wanted}",
            hint=_HINT,
        )
