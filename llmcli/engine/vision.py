"""Images and audio in a prompt, through llama.cpp's mtmd and a projector (mmproj) file.

A prompt with attachments is tokenized as usual, with a MEDIA_SLOT where each one goes
(see Tokenizer.media_tokens). The projector turns each attachment into mtmd chunks: the
text the model expects around it (e.g. `<start_of_image>`) and the attachment itself,
whose embeddings take a number of positions. `MediaPrompt.tokens` is the prompt with those
positions filled with MEDIA_SLOT, so that it counts against the context like any prompt
and the Llama's record of the KV cache stays position for position. `MediaPrompt.evaluate`
puts the whole prompt in the KV cache; generation then goes on as after any prompt.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import mtmd_cpp as mtmd

from llmcli.engine import crash_guard
from llmcli.engine.llama_state import SEQ, KvState
from llmcli.engine.log import quiet_media_log
from llmcli.engine.types import MEDIA_MARKER, MEDIA_SLOT
from llmcli.errors import LlmcliError, MediaInvalidError, MediaUnsupportedError, ModelInvalidError


@dataclass(frozen=True)
class Attachment:
    """An attached file's bytes, and a name to say which one in messages."""

    name: str
    data: bytes


# mtmd_tokenize's return codes other than 0.
_TOKENIZE_FAILURES = {1: "the prompt has a different number of media markers"}


class Projector:
    """A projector file loaded for a model: what it takes, and prompts built with it."""

    def __init__(
        self, llama: llama_cpp.Llama, path: Path, *, threads: int, gpu: bool, verbose: bool
    ) -> None:
        quiet_media_log(verbose)
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = gpu
        params.n_threads = threads
        params.print_timings = verbose
        # The first image pays for the compute graph instead; a one-shot run with none
        # would pay for nothing.
        params.warmup = False
        self._marker = MEDIA_MARKER.encode()
        params.media_marker = self._marker
        self.path = path
        with crash_guard.evaluating():
            ctx = mtmd.mtmd_init_from_file(str(path).encode(), llama.model, params)
        if not ctx:
            raise ModelInvalidError(
                f"{path.name} is not a projector for this model",
                hint="a projector (mmproj) must be made for the same model family and size",
            )
        self._ctx: Any = ctx
        self._llama = llama
        # mtmd's encoder keeps one set of buffers: serve's request threads tokenize
        # while its scheduler thread evaluates.
        self._lock = threading.Lock()
        self.vision = bool(mtmd.mtmd_support_vision(ctx))
        self.audio = bool(mtmd.mtmd_support_audio(ctx))

    def close(self) -> None:
        if self._ctx is not None:
            mtmd.mtmd_free(self._ctx)
            self._ctx = None

    @property
    def kinds(self) -> str:
        """What it takes, in words: "vision", "audio" or "vision, audio"."""
        return ", ".join(k for k, on in (("vision", self.vision), ("audio", self.audio)) if on)

    def prompt(self, tokens: Sequence[int], attachments: Sequence[Attachment]) -> MediaPrompt:
        """The prompt `tokens` (a MEDIA_SLOT for each attachment, in order) with each
        attachment expanded into its chunks."""
        slots = sum(1 for t in tokens if t == MEDIA_SLOT)
        if slots != len(attachments):
            raise LlmcliError(
                f"the prompt has {slots} places for attachments but {len(attachments)} were given"
            )
        prompt = MediaPrompt(self._ctx, self._lock)
        media = iter(attachments)
        try:
            for token in tokens:
                if token == MEDIA_SLOT:
                    prompt.add_chunks(self._chunks(next(media)))
                else:
                    prompt.add_text([token])
        except BaseException:
            prompt.close()
            raise
        return prompt

    def _chunks(self, attachment: Attachment) -> Any:
        """The mtmd chunks of one attachment, with the text the model wants around it."""
        data = attachment.data
        if not self.audio and _is_audio_file(data):
            # mtmd would try it as an image and fail as if the file were broken.
            raise MediaUnsupportedError(
                f"{attachment.name}: the projector {self.path.name} does not take audio"
            )
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        with self._lock:
            bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(self._ctx, buf, len(data), False)
        if not bitmap:
            raise MediaInvalidError(
                f"cannot read {attachment.name}: not an image or audio file it can decode "
                "(PNG, JPEG, WebP, BMP, GIF; WAV, MP3, FLAC)"
            )
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            audio = bool(mtmd.mtmd_bitmap_is_audio(bitmap))
            if (audio and not self.audio) or (not audio and not self.vision):
                kind = "audio" if audio else "images"
                raise MediaUnsupportedError(
                    f"{attachment.name}: the projector {self.path.name} does not take {kind}"
                )
            text = mtmd.mtmd_input_text()
            text.text = self._marker
            text.text_len = len(self._marker)
            text.add_special = False
            text.parse_special = True
            bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
            with self._lock:
                status = mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(text), bitmaps, 1)
            if status != 0:
                why = _TOKENIZE_FAILURES.get(status, "the projector could not preprocess it")
                raise MediaInvalidError(f"cannot use {attachment.name}: {why}")
        except BaseException:
            mtmd.mtmd_input_chunks_free(chunks)
            raise
        finally:
            mtmd.mtmd_bitmap_free(bitmap)
        return chunks


def _is_audio_file(data: bytes) -> bool:
    """Whether mtmd's helper would decode `data` as sound (mtmd-helper.cpp
    is_audio_file): WAV, MP3 (an ID3 tag or an MPEG sync word) or FLAC."""
    if len(data) < 12:
        return False
    wav = data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    mp3 = data[:3] == b"ID3" or (data[0] == 0xFF and data[1] & 0xE0 == 0xE0)
    return wav or mp3 or data[:4] == b"fLaC"


@dataclass
class _Media:
    """One attachment's chunk in a prompt, at positions [start, start + positions)."""

    chunk: Any
    start: int
    positions: int


class MediaPrompt:
    """A prompt whose attachments are expanded: `tokens` (a MEDIA_SLOT at each position
    an attachment's embeddings take) and what evaluates them. Close it to free them."""

    def __init__(self, ctx: Any, lock: threading.Lock) -> None:
        self._ctx = ctx
        self._lock = lock
        self.tokens: list[int] = []
        self.media_tokens = 0
        self._media: list[_Media] = []
        self._owned: list[Any] = []

    def add_text(self, tokens: Sequence[int]) -> None:
        self.tokens += tokens

    def add_chunks(self, chunks: Any) -> None:
        self._owned.append(chunks)
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                count = ctypes.c_size_t()
                pointer = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                self.tokens += [int(pointer[j]) for j in range(count.value)]
                continue
            positions = int(mtmd.mtmd_input_chunk_get_n_pos(chunk))
            self._media.append(_Media(chunk, len(self.tokens), positions))
            self.tokens += [MEDIA_SLOT] * positions
            self.media_tokens += int(mtmd.mtmd_input_chunk_get_n_tokens(chunk))

    def close(self) -> None:
        for chunks in self._owned:
            mtmd.mtmd_input_chunks_free(chunks)
        self._owned = []
        self._media = []

    def __enter__(self) -> MediaPrompt:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def media_at(self, position: int) -> int:
        """How many positions the attachment starting at `position` takes; 0 when none
        starts there."""
        for media in self._media:
            if media.start == position:
                return media.positions
        return 0

    @property
    def first_media(self) -> int:
        """The position of the first attachment: prompts agree on the KV cache up to it
        at most (the same slots may hold other images)."""
        return self._media[0].start if self._media else len(self.tokens)

    def evaluate(self, kv: KvState, llama: llama_cpp.Llama) -> int:
        """Put the prompt in the KV cache of the Llama's own context, keeping what it
        holds of the text before the first attachment; returns the positions evaluated.
        The latest logits are then the prompt's last token's."""
        tokens = self.tokens
        if tokens[-1] == MEDIA_SLOT:
            raise LlmcliError("an attachment must be followed by some text in the prompt")
        keep = kv.shared_prefix(tokens[: self.first_media])
        kv.rewind(keep)
        at = keep
        for media in self._media:
            if media.start > at:
                kv.evaluate(tokens[at : media.start])
            self.evaluate_media(llama.ctx, media.start, SEQ, kv.n_batch)
            kv.record_outside(MEDIA_SLOT, media.positions)
            at = media.start + media.positions
        kv.evaluate(tokens[at:])
        return len(tokens) - keep

    def evaluate_media(self, ctx: Any, position: int, seq: int, n_batch: int) -> None:
        """Evaluate the attachment that starts at `position` into sequence `seq` of the
        llama.cpp context `ctx` (its KV cache must hold exactly the positions before)."""
        media = next(m for m in self._media if m.start == position)
        new_n_past = llama_cpp.llama_pos(0)
        with self._lock, crash_guard.evaluating():
            status = mtmd.mtmd_helper_eval_chunk_single(
                self._ctx,
                ctx,
                media.chunk,
                position,
                seq,
                n_batch,
                False,
                ctypes.byref(new_n_past),
            )
        if status != 0 or new_n_past.value != position + media.positions:
            raise LlmcliError(
                f"the engine could not evaluate an attachment (mtmd status {status})",
                hint="an image's tokens may need a larger batch; try a smaller image",
            )
