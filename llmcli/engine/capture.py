"""Reading the model's intermediate tensors during a real forward pass.

llama.cpp calls an "eval callback" for every node of its compute graph: first with
`ask=true` (does anyone want this node?), then, for the nodes answered yes, with
`ask=false` once the node's data is computed. The high-level `Llama` builds its context
without that callback, so a capture makes a second, short-lived context on the model
already loaded (same weights, same engine setup) with the callback set and flash
attention off: with flash attention the attention weights are never materialised.

The bindings have no `struct ggml_tensor`, so `GgmlTensor` mirrors it from the ggml.h
vendored in llama-cpp-python 0.3.36. Only the leading fields are read; `SIZE` (336 bytes
on 64-bit) is checked against the library's own by tests/test_llama_private_api.py.

Nodes arrive per micro-batch: with a micro-batch of k tokens, a node such as
`kq_soft_max-3` arrives once per k tokens, holding the rows of those tokens only.
Sinks therefore receive chunks in order and keep (or reduce) what they need, so memory
follows what was asked, never layers x heads x tokens^2.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import llama_cpp

from llmcli.engine import crash_guard
from llmcli.engine.model import Model
from llmcli.errors import ContextOverflowError, LlmcliError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

GGML_MAX_DIMS = 4
GGML_MAX_SRC = 10
GGML_MAX_OP_PARAMS = 64
GGML_MAX_NAME = 64
GGML_TYPE_F32 = 0
# llama.cpp's flash attention setting: -1 auto, 0 off, 1 on.
FLASH_ATTN_DISABLED = 0
FLASH_ATTN_ENABLED = 1
# Tokens evaluated per call: bounds the engine's own attention scratch (n_kv x tokens x heads).
MAX_BATCH = 512


class GgmlTensor(ctypes.Structure):
    """`struct ggml_tensor` of ggml.h (llama-cpp-python 0.3.36)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * (GGML_MAX_OP_PARAMS // 4)),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * GGML_MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * GGML_MAX_NAME),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


SIZE = ctypes.sizeof(GgmlTensor)


class Sink(Protocol):
    """Where captured tensors go. `wants` is asked once per graph node and must be cheap;
    `take` gets the node's data as float32, shaped like numpy reads ggml: ne reversed."""

    def wants(self, name: str) -> bool: ...

    def take(self, name: str, data: npt.NDArray[np.float32]) -> None: ...


@cache
def _ggml_base() -> ctypes.CDLL:
    """The ggml-base library libllama already uses (tensor reads go through it)."""
    folder = Path(llama_cpp.__file__).parent / "lib"
    if sys.platform == "win32":
        names = ["ggml-base.dll"]
    elif sys.platform == "darwin":
        names = ["libggml-base.dylib", "libggml-base.0.dylib"]
    else:
        # The soname first: the dynamic loader hands back the copy already loaded.
        names = ["libggml-base.so.0", "libggml-base.so"]
    for name in names:
        for candidate in (name, str(folder / name)):
            try:
                lib = ctypes.CDLL(candidate)
            except OSError:
                continue
            lib.ggml_backend_tensor_get.argtypes = [
                ctypes.c_void_p,
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.c_size_t,
            ]
            lib.ggml_backend_tensor_get.restype = None
            lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
            lib.ggml_nbytes.restype = ctypes.c_size_t
            return lib
    raise LlmcliError("cannot find the ggml library of this llama-cpp-python install")


def _read(pointer: int, tensor: GgmlTensor) -> npt.NDArray[np.float32]:
    """Copy a node's data out of the engine, wherever it lives (CPU or GPU memory)."""
    import numpy as np

    lib = _ggml_base()
    shape = tuple(int(n) for n in reversed(tensor.ne))
    count = int(np.prod(shape))
    nbytes = int(lib.ggml_nbytes(pointer))
    contiguous = int(tensor.nb[0]) == 4 and all(
        int(tensor.nb[i]) == int(tensor.nb[i - 1]) * int(tensor.ne[i - 1])
        for i in range(1, GGML_MAX_DIMS)
    )
    if tensor.type != GGML_TYPE_F32 or not contiguous or nbytes != count * 4:
        name = tensor.name.decode(errors="replace")
        raise LlmcliError(f"cannot read engine tensor {name}: not a contiguous float32 tensor")
    out = np.empty(shape, dtype=np.float32)
    lib.ggml_backend_tensor_get(pointer, out.ctypes.data, 0, nbytes)
    return out


class _Callback:
    """The eval callback. Exceptions cannot cross back into C, so they are kept and
    re-raised after the decode; returning False stops the computation early."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.error: BaseException | None = None
        self.seen: set[str] = set()
        # Kept on the instance: the engine holds only a raw pointer to it.
        self.c_function = llama_cpp.ggml_backend_sched_eval_callback(self)

    def __call__(self, pointer: Any, ask: bool, _user_data: Any) -> bool:
        try:
            tensor = ctypes.cast(pointer, ctypes.POINTER(GgmlTensor)).contents
            name = tensor.name.decode(errors="replace")
            if ask:
                self.seen.add(name)
                return bool(self.sink.wants(name))
            self.sink.take(name, _read(int(pointer), tensor))
            return True
        except BaseException as exc:  # re-raised after the decode
            self.error = exc
            return False


def forward(
    model: Model,
    tokens: Sequence[int],
    sink: Sink,
    *,
    outputs_from: int | None = None,
    flash_attn: bool = False,
    limit: int | None = None,
) -> set[str]:
    """Evaluate `tokens` from an empty cache, handing the nodes `sink` wants to it.

    `outputs_from` asks for the output of every position from that one on (the last
    layer then keeps those rows; llama.cpp drops the others before its final layers);
    None asks for the last position's only.
    `flash_attn` computes attention as the model's own context does (same numbers as
    generation), but then no attention weights (`kq_soft_max-*`) exist to capture.
    Returns the names of every node the graph had, for discovery and for tests.
    """
    n = len(tokens)
    if n == 0:
        raise LlmcliError("nothing to evaluate: the text has no tokens")
    limit = limit or model.options.n_ctx
    if n > limit:
        raise ContextOverflowError(
            f"the text is {n} tokens; at most {limit} can be looked inside at once",
            hint=f"raise --ctx to {n} or shorten the text",
        )
    callback = _Callback(sink)
    first_output = n - 1 if outputs_from is None else outputs_from
    batch_size = min(n, MAX_BATCH)
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = n
    params.n_batch = batch_size
    # The engine setup chosen for this machine decides the micro-batch (a setup may need
    # one token per step); weight repacking is already part of the loaded model.
    params.n_ubatch = min(model.setup.ubatch or batch_size, batch_size)
    params.n_seq_max = 1
    params.n_threads = model.threads
    params.n_threads_batch = model.threads
    params.flash_attn_type = FLASH_ATTN_ENABLED if flash_attn else FLASH_ATTN_DISABLED
    params.cb_eval = callback.c_function
    params.cb_eval_user_data = None
    ctx = llama_cpp.llama_init_from_model(model.llama.model, params)
    if not ctx:
        raise LlmcliError(f"could not create a context of {n} tokens (not enough memory?)")
    batch = llama_cpp.llama_batch_init(batch_size, 0, 1)
    try:
        for start in range(0, n, batch_size):
            chunk = tokens[start : start + batch_size]
            batch.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = start + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = start + i >= first_output
            with crash_guard.evaluating():
                code = llama_cpp.llama_decode(ctx, batch)
            if callback.error is not None:
                raise callback.error
            if code != 0:
                raise LlmcliError(f"the engine could not evaluate the text (code {code})")
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
    return callback.seen
