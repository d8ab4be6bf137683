"""How much memory a model needs at a context, from its GGUF header alone. Pure.

    weights   the sum of the tensors' sizes, each by its ggml type's block size: what
              llama.cpp maps or loads ("model buffer size")
    KV cache  per layer, n_ctx x (n_embd_k_gqa + n_embd_v_gqa) elements of the cache type,
              where n_embd_k_gqa = key_length x head_count_kv of that layer (key_length
              defaults to embedding_length / head_count) and n_ctx is padded to 256 as
              llama.cpp pads it ("KV buffer size")
    compute   an estimate of llama.cpp's compute buffer with flash attention: the
              logits of one micro-batch over the vocabulary dominate it, plus a
              micro-batch's activations and the output buffer

What is approximated, and said in the plan's notes:
- sliding-window layers (Gemma 2/3, ...) are counted at the full context: llama-cpp-python
  allocates them a full-size cache by default (`swa_full`), so this is what llmcli uses;
- recurrent layers (Mamba, RWKV, hybrids) keep a small state instead of a KV cache: it
  is not counted;
- multi-head latent attention (DeepSeek 2/3) caches a compressed form: the figure from
  the header's head sizes may overstate it;
- the compute buffer depends on the backend and the graph: an estimate within a few
  per cent on CPU for dense models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from llmcli.gguf_file.header import ArrayInfo, Header, int_value
from llmcli.gguf_file.info import ggml_type_bytes

# The KV cache types `fit --cache-type` accepts, and their ggml type ids.
CACHE_TYPES: dict[str, int] = {"f16": 1, "q8_0": 8, "q4_0": 2}
DEFAULT_CACHE_TYPE = "f16"
# llama.cpp rounds the KV cache's cells up to a multiple of this.
KV_PAD = 256
# Tokens evaluated per step: llmcli's batch size (engine LoadOptions.n_batch).
MICRO_BATCH = 256
_F32 = 4
# Below this many bits per weight no common quantization goes (IQ2_XXS is 2.06).
SMALLEST_QUANT_BITS = 2.0


@dataclass(frozen=True)
class ModelShape:
    """What the plan needs from a header."""

    architecture: str | None
    layers: int
    trained_ctx: int | None
    embedding_length: int
    vocab_size: int
    feed_forward_length: int
    # Elements of one cached position, per layer: (keys, values).
    kv_per_layer: tuple[tuple[int, int], ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    """One thing the user can change, and the total it would need."""

    what: str
    total_bytes: int | None
    fits: bool | None


@dataclass(frozen=True)
class MemoryPlan:
    ctx: int
    cache_type: str  # the keys' (and, unless cache_type_v says otherwise, the values')
    cache_type_v: str
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    total_bytes: int
    available_bytes: int | None
    trained_ctx: int | None
    fits: bool | None  # None: available memory unknown
    max_ctx: int | None  # the largest context that fits, up to the trained one
    changes: tuple[Change, ...]
    notes: tuple[str, ...]

    @property
    def beyond_trained(self) -> bool:
        return self.trained_ctx is not None and self.ctx > self.trained_ctx

    def as_dict(self) -> dict[str, Any]:
        """As JSON writes it (lists, not tuples)."""
        data = asdict(self)
        data["changes"] = [asdict(c) for c in self.changes]
        data["notes"] = list(self.notes)
        data["beyond_trained"] = self.beyond_trained
        return data


def _per_layer(value: Any, layers: int) -> list[int] | None:
    """A per-layer key: one number for every layer, or an array of them."""
    if isinstance(value, ArrayInfo):
        numbers = [int(v) for v in value.values or () if isinstance(v, int)]
        if len(numbers) == layers:
            return numbers
        return [max(numbers)] * layers if numbers else None
    number = int_value(value)
    return None if number is None else [number] * layers


def model_shape(headers: Sequence[Header]) -> ModelShape:
    """The shape of a model from its header (a split model: every part's, first part
    first, which holds the metadata)."""
    meta = headers[0].metadata
    arch_value = meta.get("general.architecture")
    arch = arch_value if isinstance(arch_value, str) else None

    def key(suffix: str) -> Any:
        return meta.get(f"{arch}.{suffix}") if arch else None

    layers = int_value(key("block_count")) or 0
    n_embd = int_value(key("embedding_length")) or 0
    heads = _per_layer(key("attention.head_count"), layers) or [0] * layers
    kv_heads = _per_layer(key("attention.head_count_kv"), layers) or heads
    first_heads = next((h for h in heads if h), 0)
    key_length = int_value(key("attention.key_length")) or (
        n_embd // first_heads if first_heads else 0
    )
    value_length = int_value(key("attention.value_length")) or key_length
    kv = tuple((key_length * h, value_length * h) for h in kv_heads)

    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = tokens.count if isinstance(tokens, ArrayInfo) else int_value(key("vocab_size")) or 0
    notes: list[str] = []
    if key("attention.sliding_window") is not None:
        notes.append(
            "sliding-window layers are counted at the full context, as llama-cpp-python "
            "allocates them by default"
        )
    if any(k.startswith((f"{arch}.ssm.", f"{arch}.wkv.", f"{arch}.rwkv")) for k in meta):
        notes.append("recurrent layers' state is not counted (it is small)")
    if key("attention.kv_lora_rank") is not None:
        notes.append(
            "multi-head latent attention caches a compressed form: the KV figure may overstate it"
        )
    if not kv or not any(k + v for k, v in kv):
        notes.append("no attention heads found in the header: the KV cache is not counted")
    return ModelShape(
        architecture=arch,
        layers=layers,
        trained_ctx=int_value(key("context_length")),
        embedding_length=n_embd,
        vocab_size=vocab,
        feed_forward_length=int_value(key("feed_forward_length")) or 0,
        kv_per_layer=kv,
        notes=tuple(notes),
    )


def weights_bytes(headers: Sequence[Header]) -> int:
    """The tensors' data, summed by type (a type the gguf package does not know counts
    as nothing, and is named in a note by `plan`)."""
    return sum(ggml_type_bytes(t.ggml_type, t.n_elements) or 0 for h in headers for t in h.tensors)


def _unknown_types(headers: Sequence[Header]) -> bool:
    return any(
        ggml_type_bytes(t.ggml_type, t.n_elements) is None for h in headers for t in h.tensors
    )


def kv_cells(ctx: int) -> int:
    return -(-ctx // KV_PAD) * KV_PAD


def kv_bytes(
    shape: ModelShape,
    ctx: int,
    cache_type: str = DEFAULT_CACHE_TYPE,
    cache_type_v: str | None = None,
) -> int:
    """llama.cpp's KV cache: per layer, cells x (K row + V row), keys of `cache_type`,
    values of `cache_type_v` (None: the same)."""
    k_type = CACHE_TYPES[cache_type]
    v_type = CACHE_TYPES[cache_type_v or cache_type]
    cells = kv_cells(ctx)
    total = 0
    for k, v in shape.kv_per_layer:
        row = (ggml_type_bytes(k_type, k) or 0) + (ggml_type_bytes(v_type, v) or 0)
        total += cells * row
    return total


def compute_bytes(shape: ModelShape, ctx: int) -> int:
    """An estimate of the compute buffer (with flash attention) and the output buffer."""
    ubatch = min(MICRO_BATCH, kv_cells(ctx))
    activations = shape.vocab_size + shape.feed_forward_length + shape.embedding_length
    return _F32 * ubatch * activations + _F32 * shape.vocab_size


def _largest_ctx(need: Callable[[int], int], available: int, limit: int) -> int | None:
    """The largest multiple of KV_PAD up to `limit` (or `limit` itself) whose need fits."""
    if need(min(KV_PAD, limit)) > available:
        return None
    if need(limit) <= available:
        return limit
    low, high = 1, limit // KV_PAD  # in units of KV_PAD: low fits, high does not
    while high - low > 1:
        mid = (low + high) // 2
        if need(mid * KV_PAD) <= available:
            low = mid
        else:
            high = mid
    return low * KV_PAD


def plan(
    headers: Sequence[Header],
    *,
    ctx: int,
    cache_type: str = DEFAULT_CACHE_TYPE,
    cache_type_v: str | None = None,
    available: int | None,
) -> MemoryPlan:
    """The memory plan at `ctx` with a KV cache of `cache_type` (its values of
    `cache_type_v`, None: the same), against `available` bytes (None: unknown, no
    verdict)."""
    shape = model_shape(headers)
    weights = weights_bytes(headers)
    v_type = cache_type_v or cache_type

    def need(n_ctx: int, kind: str = cache_type, v_kind: str = v_type) -> int:
        return weights + kv_bytes(shape, n_ctx, kind, v_kind) + compute_bytes(shape, n_ctx)

    total = need(ctx)
    fits = None if available is None else total <= available
    limit = shape.trained_ctx or ctx
    max_ctx = None if available is None else _largest_ctx(need, available, limit)
    notes = list(shape.notes)
    if _unknown_types(headers):
        notes.append("some tensors have a type the gguf package does not know: not counted")
    changes: list[Change] = []
    if available is not None and not fits:
        if max_ctx is not None:
            changes.append(Change(f"--ctx {max_ctx}", need(max_ctx), True))
        for kind in CACHE_TYPES:
            smaller = kv_bytes(shape, ctx, kind) < kv_bytes(shape, ctx, cache_type, v_type)
            if kind != cache_type and smaller:
                changes.append(
                    Change(
                        f"a {kind} KV cache",
                        need(ctx, kind, kind),
                        need(ctx, kind, kind) <= available,
                    )
                )
        room = available - (total - weights)  # what the weights may take
        params = sum(t.n_elements for h in headers for t in h.tensors)
        bits = room * 8 / params if params else 0.0
        if bits >= SMALLEST_QUANT_BITS:
            changes.append(
                Change(f"a quantization of at most {bits:.1f} bits per weight", None, True)
            )
    return MemoryPlan(
        ctx=ctx,
        cache_type=cache_type,
        cache_type_v=v_type,
        weights_bytes=weights,
        kv_bytes=kv_bytes(shape, ctx, cache_type, v_type),
        compute_bytes=compute_bytes(shape, ctx),
        total_bytes=total,
        available_bytes=available,
        trained_ctx=shape.trained_ctx,
        fits=fits,
        max_ctx=max_ctx,
        changes=tuple(changes),
        notes=tuple(notes),
    )


def largest_ctx(
    headers: Sequence[Header],
    *,
    available: int,
    limit: int,
    cache_type: str = DEFAULT_CACHE_TYPE,
    cache_type_v: str | None = None,
    sequences: int = 1,
) -> int | None:
    """The largest context per sequence, up to `limit`, at which `sequences` of them fit
    in `available` bytes (a multiple of 256 below `limit`); None when not even 256 do."""
    shape = model_shape(headers)
    weights = weights_bytes(headers)

    def need(ctx: int) -> int:
        cells = ctx * sequences
        return (
            weights + kv_bytes(shape, cells, cache_type, cache_type_v) + compute_bytes(shape, cells)
        )

    return _largest_ctx(need, available, limit)
