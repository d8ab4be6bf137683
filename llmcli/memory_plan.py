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

With layers offloaded to a GPU (`Offload`), the plan splits as llama.cpp places them: the
token embeddings stay in RAM, the last `gpu_layers` of the layers (the output layer
counted as one) go to the GPU with their KV cache, and the compute buffer goes there; a
tied output layer is the token embeddings copied to the GPU. Several GPUs count as one
with their free memory summed (llama.cpp splits layers by free memory).

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
class Offload:
    """Layers on a GPU: how many, as llama.cpp's n_gpu_layers takes them (-1: all), and
    the GPU memory free for them (None: unknown, no verdict)."""

    gpu_layers: int
    available: int | None
    # The GPU's memory is the RAM (Apple silicon, an integrated GPU): what is offloaded
    # counts against RAM too.
    unified: bool = False


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
    # With an Offload: of the model's layers and its output layer (llama.cpp's count, as
    # its "offloaded N/M layers" line), how many go to the GPU, and the bytes each side
    # needs. Without one, everything is in RAM.
    offloaded_layers: int = 0
    model_layers: int = 0
    ram_bytes: int = 0
    gpu_bytes: int = 0
    gpu_weights_bytes: int = 0
    gpu_kv_bytes: int = 0
    gpu_available_bytes: int | None = None

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
    return sum(kv_layer_bytes(shape, ctx, cache_type, cache_type_v))


def kv_layer_bytes(
    shape: ModelShape,
    ctx: int,
    cache_type: str = DEFAULT_CACHE_TYPE,
    cache_type_v: str | None = None,
) -> list[int]:
    """The KV cache of each layer (see kv_bytes)."""
    k_type = CACHE_TYPES[cache_type]
    v_type = CACHE_TYPES[cache_type_v or cache_type]
    cells = kv_cells(ctx)
    return [
        cells * ((ggml_type_bytes(k_type, k) or 0) + (ggml_type_bytes(v_type, v) or 0))
        for k, v in shape.kv_per_layer
    ]


def compute_bytes(shape: ModelShape, ctx: int) -> int:
    """An estimate of the compute buffer (with flash attention) and the output buffer."""
    ubatch = min(MICRO_BATCH, kv_cells(ctx))
    activations = shape.vocab_size + shape.feed_forward_length + shape.embedding_length
    return _F32 * ubatch * activations + _F32 * shape.vocab_size


def host_compute_bytes(shape: ModelShape, ctx: int) -> int:
    """With the layers on a GPU, what stays in RAM for a step: a micro-batch's input
    embeddings and the output buffer."""
    ubatch = min(MICRO_BATCH, kv_cells(ctx))
    return _F32 * ubatch * shape.embedding_length + _F32 * shape.vocab_size


def gpu_layer_indices(layers: int, gpu_layers: int) -> range:
    """The layers llama.cpp puts on the GPU for n_gpu_layers = `gpu_layers` (-1: all):
    0..layers-1 the repeating ones, `layers` the output layer; the last go first."""
    count = layers + 1 if gpu_layers < 0 else min(gpu_layers, layers + 1)
    return range(layers + 1 - count, layers + 1)


_INPUT_TENSORS = ("token_embd", "position_embd", "token_types")


@dataclass(frozen=True)
class _Layout:
    """The weights by where llama.cpp places them."""

    # One entry per repeating layer, then the output layer's (and anything else outside
    # the blocks but the input embeddings, which stay in RAM).
    layer_bytes: tuple[int, ...]
    # A tied output layer reads the token embeddings: copied to the GPU with it.
    tied_output_bytes: int


def _layout(headers: Sequence[Header], layers: int) -> _Layout:
    sizes = [0] * (layers + 1)
    names = set()
    embeddings = 0
    for tensor in (t for h in headers for t in h.tensors):
        size = ggml_type_bytes(tensor.ggml_type, tensor.n_elements) or 0
        names.add(tensor.name)
        block, _, rest = tensor.name.partition(".")
        number = rest.partition(".")[0]
        if block == "blk" and number.isdigit() and int(number) < layers:
            sizes[int(number)] += size
        elif tensor.name.startswith(_INPUT_TENSORS):
            embeddings += size if tensor.name == "token_embd.weight" else 0
        else:
            sizes[layers] += size
    tied = 0 if "output.weight" in names else embeddings
    return _Layout(tuple(sizes), tied)


@dataclass(frozen=True)
class _Need:
    """Bytes in RAM and on the GPU, and of each the weights' share."""

    ram: int
    gpu: int
    ram_weights: int
    gpu_weights: int
    gpu_kv: int = 0


class _Planner:
    """What a model needs in RAM and on the GPU at a context, for one header."""

    def __init__(
        self, headers: Sequence[Header], available: int | None, offload: Offload | None
    ) -> None:
        self.shape = model_shape(headers)
        self.weights = weights_bytes(headers)
        self.available = available
        self.offload = offload if offload is not None and offload.gpu_layers != 0 else None
        self.layout = _layout(headers, self.shape.layers)

    def split(self, ctx: int, k: str, v: str, gpu_layers: int | None = None) -> _Need:
        kv = kv_layer_bytes(self.shape, ctx, k, v)
        compute = compute_bytes(self.shape, ctx)
        layers = self.shape.layers
        count = 0 if self.offload is None else self.offload.gpu_layers
        on_gpu = gpu_layer_indices(layers, count if gpu_layers is None else gpu_layers)
        if self.offload is None or not on_gpu:
            return _Need(self.weights + sum(kv) + compute, 0, self.weights, 0)
        moved = sum(self.layout.layer_bytes[i] for i in on_gpu)
        gpu_kv = sum(kv[i] for i in on_gpu if i < len(kv))
        gpu_weights = moved + (self.layout.tied_output_bytes if layers in on_gpu else 0)
        ram_weights = self.weights - moved
        ram = ram_weights + sum(kv) - gpu_kv + host_compute_bytes(self.shape, ctx)
        gpu = gpu_weights + gpu_kv + compute
        if self.offload.unified:
            return _Need(ram + gpu, gpu, ram_weights + gpu_weights, gpu_weights, gpu_kv)
        return _Need(ram, gpu, ram_weights, gpu_weights, gpu_kv)

    def need(self, ctx: int, k: str, v: str, gpu_layers: int | None = None) -> tuple[int, int]:
        """(RAM, GPU) bytes at `ctx` cells with keys of `k` and values of `v`."""
        split = self.split(ctx, k, v, gpu_layers)
        return split.ram, split.gpu

    def room_ratio(self, ctx: int, k: str, v: str) -> float:
        """How far the weights would have to shrink (all alike, as a smaller quantization
        shrinks them) for everything to fit: 1.0 when they need not."""
        split = self.split(ctx, k, v)
        ratios = []
        if self.available is not None and split.ram_weights:
            ratios.append((self.available - (split.ram - split.ram_weights)) / split.ram_weights)
        gpu_free = self.offload.available if self.offload is not None else None
        if gpu_free is not None and split.gpu_weights:
            ratios.append((gpu_free - (split.gpu - split.gpu_weights)) / split.gpu_weights)
        return min([1.0, *ratios])

    def fits(self, ctx: int, k: str, v: str, gpu_layers: int | None = None) -> bool | None:
        """None when a figure it depends on is unknown."""
        ram, gpu = self.need(ctx, k, v, gpu_layers)
        if self.available is None:
            return None
        if gpu and self.offload is not None:
            if self.offload.available is None:
                return None
            if gpu > self.offload.available:
                return False
        return ram <= self.available

    def offloaded(self, gpu_layers: int | None = None) -> int:
        if self.offload is None:
            return 0
        count = self.offload.gpu_layers if gpu_layers is None else gpu_layers
        return len(gpu_layer_indices(self.shape.layers, count))

    def most_gpu_layers(self, ctx: int, k: str, v: str) -> int | None:
        """The most layers (n_gpu_layers, fewer than asked) with which the model fits at
        `ctx`, the rest in RAM: 0 when it fits only in RAM; None when not even that."""
        if self.offload is None:
            return None
        for count in range(self.offloaded() - 1, -1, -1):
            if self.fits(ctx, k, v, count):
                return count
        return None


def _largest_ctx(fits: Callable[[int], bool | None], limit: int) -> int | None:
    """The largest multiple of KV_PAD up to `limit` (or `limit` itself) that fits."""
    if not fits(min(KV_PAD, limit)):
        return None
    if fits(limit):
        return limit
    low, high = 1, limit // KV_PAD  # in units of KV_PAD: low fits, high does not
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid * KV_PAD):
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
    offload: Offload | None = None,
) -> MemoryPlan:
    """The memory plan at `ctx` with a KV cache of `cache_type` (its values of
    `cache_type_v`, None: the same), against `available` bytes of RAM (None: unknown, no
    verdict) and, with `offload`, the GPU's."""
    planner = _Planner(headers, available, offload)
    shape, weights = planner.shape, planner.weights
    v_type = cache_type_v or cache_type
    split = planner.split(ctx, cache_type, v_type)
    ram, gpu = split.ram, split.gpu
    kv = kv_bytes(shape, ctx, cache_type, v_type)
    compute = compute_bytes(shape, ctx)
    total = weights + kv + compute
    fits = planner.fits(ctx, cache_type, v_type)
    limit = shape.trained_ctx or ctx
    known = fits is not None
    max_ctx = _largest_ctx(lambda n: planner.fits(n, cache_type, v_type), limit) if known else None
    notes = list(shape.notes)
    if _unknown_types(headers):
        notes.append("some tensors have a type the gguf package does not know: not counted")
    if planner.offload is not None and planner.layout.tied_output_bytes and gpu:
        notes.append("the output layer shares the token embeddings: the GPU holds a copy")
    changes: list[Change] = []
    if known and not fits:
        if max_ctx is not None:
            changes.append(
                Change(f"--ctx {max_ctx}", sum(planner.need(max_ctx, cache_type, v_type)), True)
            )
        for kind in CACHE_TYPES:
            smaller = kv_bytes(shape, ctx, kind) < kv
            if kind != cache_type and smaller:
                changes.append(
                    Change(
                        f"a {kind} KV cache",
                        sum(planner.need(ctx, kind, kind)),
                        bool(planner.fits(ctx, kind, kind)),
                    )
                )
        fewer = planner.most_gpu_layers(ctx, cache_type, v_type)
        if fewer is not None:
            changes.append(
                Change(
                    f"--gpu-layers {fewer}",
                    sum(planner.need(ctx, cache_type, v_type, fewer)),
                    True,
                )
            )
        params = sum(t.n_elements for h in headers for t in h.tensors)
        room = planner.room_ratio(ctx, cache_type, v_type) * weights
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
        kv_bytes=kv,
        compute_bytes=compute,
        total_bytes=total,
        available_bytes=available,
        trained_ctx=shape.trained_ctx,
        fits=fits,
        max_ctx=max_ctx,
        changes=tuple(changes),
        notes=tuple(notes),
        offloaded_layers=planner.offloaded(),
        model_layers=shape.layers + 1 if planner.offload is not None else 0,
        ram_bytes=ram,
        gpu_bytes=gpu,
        gpu_weights_bytes=split.gpu_weights,
        gpu_kv_bytes=split.gpu_kv,
        gpu_available_bytes=planner.offload.available if planner.offload else None,
    )


def largest_ctx(
    headers: Sequence[Header],
    *,
    available: int,
    limit: int,
    cache_type: str = DEFAULT_CACHE_TYPE,
    cache_type_v: str | None = None,
    sequences: int = 1,
    offload: Offload | None = None,
) -> int | None:
    """The largest context per sequence, up to `limit`, at which `sequences` of them fit
    in `available` bytes of RAM and, with `offload`, the GPU (a multiple of 256 below
    `limit`); None when not even 256 do."""
    planner = _Planner(headers, available, offload)
    v_type = cache_type_v or cache_type
    return _largest_ctx(lambda ctx: planner.fits(ctx * sequences, cache_type, v_type), limit)


def gpu_layers_that_fit(
    headers: Sequence[Header],
    *,
    ctx: int,
    available: int | None,
    offload: Offload,
    cache_type: str = DEFAULT_CACHE_TYPE,
    cache_type_v: str | None = None,
) -> int | None:
    """The most layers (n_gpu_layers, fewer than `offload` asks) with which the model
    fits at `ctx`: 0 when it fits only in RAM, None when not even that."""
    planner = _Planner(headers, available, offload)
    v_type = cache_type_v or cache_type
    return planner.most_gpu_layers(ctx, cache_type, v_type)
