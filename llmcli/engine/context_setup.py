"""The KV cache's types, RoPE scaling and a LoRA adapter: settings every context of a
model must share, whether the `Llama` makes it, a larger one replaces it (Model.make_room)
or the scheduler makes its own (serve)."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import llama_cpp

from llmcli.engine.types import LoadOptions
from llmcli.errors import ModelInvalidError, UsageError

GGML_TYPES: dict[str, int] = {
    "f16": llama_cpp.GGML_TYPE_F16,
    "q8_0": llama_cpp.GGML_TYPE_Q8_0,
    "q4_0": llama_cpp.GGML_TYPE_Q4_0,
}


def context_arguments(options: LoadOptions) -> dict[str, Any]:
    """`Llama(...)` keyword arguments for the cache types and RoPE scaling. UsageError
    where llama.cpp would refuse the combination with a bare "failed to create context"."""
    for flag, kind in (("k", options.cache_type_k), ("v", options.cache_type_v)):
        if kind not in GGML_TYPES:
            raise UsageError(
                f"--cache-type-{flag} must be one of {', '.join(GGML_TYPES)}, not {kind!r}"
            )
    if options.cache_type_v != "f16" and not options.flash_attn:
        # llama.cpp keeps a quantized V cache only for its flash-attention kernels.
        raise UsageError(
            f"--cache-type-v {options.cache_type_v} needs flash attention, which is off here",
            hint="use --cache-type-v f16 (the keys may stay quantized)",
        )
    arguments: dict[str, Any] = {
        "type_k": GGML_TYPES[options.cache_type_k],
        "type_v": GGML_TYPES[options.cache_type_v],
    }
    if options.yarn:
        arguments["rope_scaling_type"] = llama_cpp.LLAMA_ROPE_SCALING_TYPE_YARN
        arguments["yarn_orig_ctx"] = options.yarn_orig_ctx
    elif options.rope_scale is not None:
        arguments["rope_scaling_type"] = llama_cpp.LLAMA_ROPE_SCALING_TYPE_LINEAR
    if options.rope_scale is not None:
        arguments["rope_freq_scale"] = 1.0 / options.rope_scale
    return arguments


def set_context_params(params: Any, options: LoadOptions) -> None:
    """The same settings on a low-level `llama_context_params` (the scheduler's)."""
    for name, value in context_arguments(options).items():
        setattr(params, name, value)


class Adapter:
    """A LoRA adapter loaded for one model. llama.cpp frees it with the model."""

    def __init__(self, model: Any, path: Path, scale: float, *, model_name: str) -> None:
        self.path = path
        self.scale = scale
        self._model_name = model_name
        handle = llama_cpp.llama_adapter_lora_init(model, str(path).encode("utf-8"))
        if not handle:
            raise ModelInvalidError(
                f"--lora: {path.name} does not fit {model_name}: it was made for another "
                "model (architecture or tensor shapes differ)",
                hint="--verbose shows llama.cpp's reason",
            )
        self._handle = handle

    def apply(self, ctx: Any) -> None:
        """Use the adapter, at its scale, in the context `ctx` (a llama_context_p)."""
        adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._handle)
        scales = (ctypes.c_float * 1)(self.scale)
        if llama_cpp.llama_set_adapters_lora(ctx, adapters, 1, scales):
            raise ModelInvalidError(
                f"--lora: llama.cpp could not apply {self.path.name} to {self._model_name}"
            )


def identity(options: LoadOptions) -> str:
    """What of these settings changes a saved KV state: part of the prompt cache's key."""
    parts = [f"k={options.cache_type_k}", f"v={options.cache_type_v}"]
    if options.lora is not None:
        stat = options.lora.stat()
        parts.append(f"lora={options.lora.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
        parts.append(f"scale={options.lora_scale}")
    if options.rope_scale is not None or options.yarn:
        parts.append(f"rope={options.rope_scale}:{options.yarn}:{options.yarn_orig_ctx}")
    return "|".join(parts)
