"""A small real vision projector for the test model, and small real images.

No vision GGUF with a projector ships in a package the tests can install, so the tests
write one: a SigLIP-style encoder (one layer, 64-wide, random weights) with the `gemma3`
projection (average pooling, RMS norm, a linear map) whose output is 576 wide, the hidden
size of SmolLM2-135M. llama.cpp's mtmd loads it like any mmproj file and runs the whole
image path with it: decoding, resizing, the encoder graph, the projection, and the image
embeddings' evaluation in the text model. The answers mean nothing; they are real.

SmolVLM's own projector type (idefics3) cannot be used: mtmd wraps its images in tokens
such as `<fake_token_around_image>` that SmolLM2-135M's vocabulary lacks.

The layout follows llama.cpp's tools/mtmd/clip-impl.h (keys, tensor names) and clip.cpp
(`build_siglip`): tensors are written in PyTorch order, which GGUF stores reversed.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np

# The text model's hidden size (SmolLM2-135M): what each image embedding must be.
TEXT_EMBD = 576
IMAGE_SIZE = 64
PATCH_SIZE = 8
# Average pooling over 2x2 patches: (64 / 8 / 2)^2 = 16 embeddings per image.
POOL = 2
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE // POOL) ** 2

_EMBD = 64
_HEADS = 4
_FFN = 128
_LAYERS = 1


def write_projector(path: Path, *, seed: int = 7, width: int = TEXT_EMBD) -> Path:
    """Write the projector GGUF to `path` (deterministic for a seed); `width`, the width
    of its embeddings, other than TEXT_EMBD makes one for another model."""
    rng = np.random.default_rng(seed)

    def weights(*shape: int, scale: float = 0.05) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("clip.projector_type", "gemma3")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_audio_encoder", False)
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", _EMBD)
    writer.add_uint32("clip.vision.feed_forward_length", _FFN)
    writer.add_uint32("clip.vision.projection_dim", width)
    writer.add_uint32("clip.vision.block_count", _LAYERS)
    writer.add_uint32("clip.vision.attention.head_count", _HEADS)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    writer.add_uint32("clip.vision.projector.scale_factor", POOL)

    n_patches = (IMAGE_SIZE // PATCH_SIZE) ** 2
    writer.add_tensor("v.patch_embd.weight", weights(_EMBD, 3, PATCH_SIZE, PATCH_SIZE))
    writer.add_tensor("v.patch_embd.bias", weights(_EMBD))
    writer.add_tensor("v.position_embd.weight", weights(n_patches, _EMBD))
    for i in range(_LAYERS):
        _encoder_block(writer, f"v.blk.{i}", _EMBD, _FFN, weights)
    _norm(writer, "v.post_ln", _EMBD)
    # Small outputs: embeddings near the scale of the text model's own token embeddings.
    writer.add_tensor("mm.soft_emb_norm.weight", np.ones(_EMBD, dtype=np.float32))
    writer.add_tensor("mm.input_projection.weight", weights(_EMBD, width, scale=0.02))
    return _written(writer, path)


Weights = Callable[..., np.ndarray]


def _norm(writer: gguf.GGUFWriter, name: str, width: int) -> None:
    writer.add_tensor(f"{name}.weight", np.ones(width, dtype=np.float32))
    writer.add_tensor(f"{name}.bias", np.zeros(width, dtype=np.float32))


def _encoder_block(
    writer: gguf.GGUFWriter,
    block: str,
    embd: int,
    ffn: int,
    weights: Weights,
    *,
    key_bias: bool = True,
) -> None:
    """One pre-norm transformer layer of an encoder, as clip.cpp reads it."""
    for norm in ("ln1", "ln2"):
        _norm(writer, f"{block}.{norm}", embd)
    for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
        writer.add_tensor(f"{block}.{name}.weight", weights(embd, embd))
        if key_bias or name != "attn_k":
            writer.add_tensor(f"{block}.{name}.bias", weights(embd))
    writer.add_tensor(f"{block}.ffn_up.weight", weights(ffn, embd))
    writer.add_tensor(f"{block}.ffn_up.bias", weights(ffn))
    writer.add_tensor(f"{block}.ffn_down.weight", weights(embd, ffn))
    writer.add_tensor(f"{block}.ffn_down.bias", weights(embd))


def _written(writer: gguf.GGUFWriter, path: Path) -> Path:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_png(path: Path, *, width: int = 48, height: int = 40, seed: int = 0) -> Path:
    """Write a real RGB PNG (a colour gradient with noise), made without an image library."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack(
        [x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=-1
    )
    pixels = (pixels + rng.integers(0, 32, pixels.shape)) % 256
    rows = b"".join(b"\x00" + bytes(row.astype(np.uint8).tobytes()) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return path


# The audio projector: a Whisper-style encoder (two 1-D convolutions, one transformer
# layer, 32-wide) with the `ultravox` projection (frames stacked STACK at a time, RMS norm,
# a SwiGLU layer, RMS norm, a linear map to 576), as llama.cpp's
# tools/mtmd/models/whisper-enc.cpp builds it. mtmd turns a sound into a log-mel
# spectrogram in 30-second chunks of 3000 frames; the second convolution halves them (1500
# positions) and the stacking divides them by STACK: 75 embeddings per chunk. (`qwen2a`
# loads too, but makes 750, ten times the text model's work in every test.)
STACK = 20
AUDIO_TOKENS = 1500 // STACK
_MELS = 16
_A_EMBD = 32
_A_HEADS = 2
_A_FFN = 64
_A_POSITIONS = 1500
_A_MID = 64


def write_audio_projector(path: Path, *, seed: int = 11, width: int = TEXT_EMBD) -> Path:
    """Write the audio projector GGUF to `path` (deterministic for a seed; `width` as for
    write_projector)."""
    rng = np.random.default_rng(seed)

    def weights(*shape: int, scale: float = 0.05) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("clip.projector_type", "ultravox")
    writer.add_bool("clip.has_vision_encoder", False)
    writer.add_bool("clip.has_audio_encoder", True)
    writer.add_uint32("clip.audio.num_mel_bins", _MELS)
    writer.add_uint32("clip.audio.embedding_length", _A_EMBD)
    writer.add_uint32("clip.audio.feed_forward_length", _A_FFN)
    writer.add_uint32("clip.audio.projection_dim", width)
    writer.add_uint32("clip.audio.block_count", 1)
    writer.add_uint32("clip.audio.attention.head_count", _A_HEADS)
    writer.add_float32("clip.audio.attention.layer_norm_epsilon", 1e-5)
    writer.add_uint32("clip.audio.projector.stack_factor", STACK)

    # Convolution kernels in PyTorch's (out, in, width), stored in half precision as
    # converted Whisper encoders are; their biases as (out, 1) to broadcast over frames.
    writer.add_tensor("a.conv1d.1.weight", weights(_A_EMBD, _MELS, 3).astype(np.float16))
    writer.add_tensor("a.conv1d.1.bias", weights(_A_EMBD, 1))
    writer.add_tensor("a.conv1d.2.weight", weights(_A_EMBD, _A_EMBD, 3).astype(np.float16))
    writer.add_tensor("a.conv1d.2.bias", weights(_A_EMBD, 1))
    writer.add_tensor("a.position_embd.weight", weights(_A_POSITIONS, _A_EMBD))
    # Whisper's key projection has no bias.
    _encoder_block(writer, "a.blk.0", _A_EMBD, _A_FFN, weights, key_bias=False)
    _norm(writer, "a.post_ln", _A_EMBD)
    stacked = _A_EMBD * STACK
    writer.add_tensor("mm.a.norm_pre.weight", np.ones(stacked, dtype=np.float32))
    # SwiGLU: the layer's output is split in two halves, one gating the other.
    writer.add_tensor("mm.a.mlp.1.weight", weights(2 * _A_MID, stacked))
    writer.add_tensor("mm.a.norm_mid.weight", np.ones(_A_MID, dtype=np.float32))
    writer.add_tensor("mm.a.mlp.2.weight", weights(width, _A_MID, scale=0.02))
    return _written(writer, path)


def write_wav(path: Path, *, seconds: float = 1.0, pitch: float = 440.0, rate: int = 16000) -> Path:
    """Write a real mono 16-bit PCM WAV: a tone with a little noise."""
    rng = np.random.default_rng(int(pitch))
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.4 * np.sin(2 * np.pi * pitch * t) + 0.02 * rng.standard_normal(t.size)
    samples = (wave * 32767).astype("<i2").tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(samples), b"WAVE", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16,
        b"data", len(samples),
    )  # fmt: skip
    path.write_bytes(header + samples)
    return path
