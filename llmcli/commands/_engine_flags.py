"""--cache-type-k/-v, --lora/--lora-scale, --rope-scale/--yarn: checked before any model
loads, and turned into the engine's LoadOptions fields.

A typo in one of these must not reach llama-cpp-python, which swallows what it does not
understand (an unknown cache type would silently be f16, a missing adapter a crash)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcli.config.options_table import CACHE_TYPES
from llmcli.errors import UsageError


@dataclass(frozen=True)
class EngineFlags:
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    lora: Path | None = None
    lora_scale: float = 1.0
    rope_scale: float | None = None
    yarn: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> EngineFlags:
        """From a command's parameters; a command without one of them gets the default.
        UsageError for a cache type that is not one, or a --lora that is not an adapter."""
        lora = params.get("lora")
        return cls(
            cache_type_k=_cache_type("--cache-type-k", params.get("cache_type_k")),
            cache_type_v=_cache_type("--cache-type-v", params.get("cache_type_v")),
            lora=check_lora(Path(lora).expanduser()) if lora else None,
            lora_scale=float(params.get("lora_scale", 1.0)),
            rope_scale=params.get("rope_scale"),
            yarn=bool(params.get("yarn", False)),
        )

    def load_fields(self, path: Path, ctx: int) -> dict[str, Any]:
        """LoadOptions fields for the model at `path` used at `ctx` tokens a sequence."""
        fields: dict[str, Any] = {
            "cache_type_k": self.cache_type_k,
            "cache_type_v": self.cache_type_v,
            "lora": self.lora,
            "lora_scale": self.lora_scale,
            "rope_scale": self.rope_scale,
            "yarn": self.yarn,
        }
        if self.yarn:
            trained = trained_ctx(path)
            fields["yarn_orig_ctx"] = trained or 0
            if self.rope_scale is None and trained:
                # YaRN stretches by a factor; without --rope-scale, by what the context
                # asked for needs (llama.cpp would otherwise keep the model's, usually 1).
                fields["rope_scale"] = max(1.0, ctx / trained)
        return fields


def _cache_type(flag: str, value: object) -> str:
    if value is None:
        return "f16"
    word = str(value).strip().lower()
    if word not in CACHE_TYPES:
        raise UsageError(f"{flag} must be one of {', '.join(CACHE_TYPES)}, not {value!r}")
    return word


def check_lora(path: Path) -> Path:
    """`path` when it is a LoRA adapter GGUF; UsageError saying what it is otherwise.
    Whether it suits the model, llama.cpp decides when it applies it."""
    from llmcli.errors import ModelInvalidError
    from llmcli.gguf_file.header import read_header

    if not path.is_file():
        raise UsageError(f"--lora: no such file: {path}")
    try:
        meta = read_header(path).metadata
    except ModelInvalidError as exc:
        raise UsageError(f"--lora: {path} is not a GGUF file ({exc.message})") from None
    kind, adapter = meta.get("general.type"), meta.get("adapter.type")
    if kind != "adapter" or adapter != "lora":
        what = f"a {adapter} adapter" if kind == "adapter" else f"a {kind or 'model'} file"
        raise UsageError(
            f"--lora: {path} is {what}, not a LoRA adapter",
            hint="convert one with llama.cpp's convert_lora_to_gguf.py",
        )
    return path


def trained_ctx(path: Path) -> int | None:
    """The context the model was trained on, from its header."""
    from llmcli.gguf_file.header import int_value, read_header

    meta = read_header(path).metadata
    arch = meta.get("general.architecture")
    return int_value(meta.get(f"{arch}.context_length")) if isinstance(arch, str) else None
