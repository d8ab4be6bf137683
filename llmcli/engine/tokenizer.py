"""Text to tokens and back for a loaded model: its vocabulary, its chat template, and the
tokens that mark thinking."""

from __future__ import annotations

import ctypes
import json
from collections.abc import Sequence
from typing import Any

import llama_cpp
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from llmcli.engine import reasoning
from llmcli.engine.chat_prompt import Segment, merge_system, segments
from llmcli.engine.reasoning import ReasoningFormat, Splitter, Thinking
from llmcli.engine.tool_calls import CALL_MARKERS
from llmcli.engine.types import MEDIA_MARKER, MEDIA_SLOT, LoadOptions, Message
from llmcli.errors import ChatTemplateError, LlmcliError


class Tokenizer:
    """Tokenizing, chat prompts rendered with the model's template, token pieces."""

    def __init__(self, llama: llama_cpp.Llama, options: LoadOptions) -> None:
        self._llama = llama
        self._options = options
        self.vocab = llama_cpp.llama_model_get_vocab(llama.model)
        self._piece_buf = ctypes.create_string_buffer(256)
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self._template_error: str | None = None
        self._formatter = self._make_formatter()
        self.reasoning, self.marker_ids = self._reasoning_format()

    # -- the template ------------------------------------------------------------------

    @property
    def chat_template(self) -> str | None:
        """The template in use: the one given in the load options, else the GGUF's."""
        if self._options.chat_template is not None:
            return self._options.chat_template
        return self._llama.metadata.get("tokenizer.chat_template") or None

    @property
    def has_chat_template(self) -> bool:
        """True also for a template that does not parse: using it says why it fails."""
        return self._formatter is not None or self._template_error is not None

    def _make_formatter(self) -> Jinja2ChatFormatter | None:
        template = self.chat_template
        if not template:
            return None
        llama = self._llama
        try:
            return Jinja2ChatFormatter(
                template=template,
                eos_token=self._text_of(llama.token_eos()),
                bos_token=self._text_of(llama.token_bos()),
            )
        except Exception as exc:  # a template that does not parse
            self._template_error = f"{type(exc).__name__}: {exc}"
            return None

    def _render(self, messages: Sequence[Message], kwargs: dict[str, Any]) -> str:
        assert self._formatter is not None
        return self._formatter(messages=list(messages), **kwargs).prompt  # type: ignore[arg-type]

    def _template_failed(self, why: str) -> ChatTemplateError:
        source = (
            "the template given with --template"
            if self._options.chat_template
            else (f"the chat template of {self._options.path.name}")
        )
        return ChatTemplateError(
            f"{source} failed: {' '.join(why.split())}",
            hint="use --raw for a plain text completion, or --template FILE for another template",
        )

    # -- tokens ------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = True, special: bool = False) -> list[int]:
        data = text.encode("utf-8", errors="surrogateescape")
        return list(self._llama.tokenize(data, add_bos=add_bos, special=special))

    def token_bytes(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token (pieces of any length; the engine drops long ones)."""
        buf = self._piece_buf
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    def shown_bytes(self, token: int) -> bytes:
        """A token's bytes; a control token's name (<|im_end|>), which has none."""
        control = bool(llama_cpp.llama_vocab_is_control(self.vocab, token))
        return self.token_bytes(token, special=control)

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def _text_of(self, token: int) -> str:
        if token < 0:
            return ""
        text: bytes = llama_cpp.llama_vocab_get_text(self.vocab, token)
        return text.decode("utf-8")

    def prompt_text(self, tokens: Sequence[int]) -> str:
        """The text of prompt tokens exactly as the model reads them, control tokens included."""
        data = b"".join(self.token_bytes(t, special=True) for t in tokens)
        return data.decode("utf-8", errors="replace")

    def chat_tokens(
        self,
        messages: Sequence[Message],
        *,
        special: bool = False,
        thinking: Thinking | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> list[int]:
        """Tokens of a chat prompt rendered with the model's own template.

        Message content is plain text unless `special` is set, so it cannot forge turns.
        `thinking` reaches the template the way it expects (see `engine.reasoning`);
        `tools` (OpenAI's tool objects) reach it as `tools`.
        """
        return self.chat_prompt(messages, special=special, thinking=thinking, tools=tools)[0]

    def chat_prompt(
        self,
        messages: Sequence[Message],
        *,
        special: bool = False,
        thinking: Thinking | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        media: bool = False,
    ) -> tuple[list[int], int]:
        """`chat_tokens`, and how many of them come before the last message's content:
        the template's preamble, system prompt included, which every prompt that differs
        only in that message shares (0 when the template gives no such boundary).
        With `media`, each MEDIA_MARKER in the messages' content becomes a MEDIA_SLOT."""
        if self._formatter is None:
            if self._template_error is not None:
                raise self._template_failed(self._template_error)
            raise LlmcliError("this model has no chat template")
        kwargs, messages = reasoning.template_inputs(
            self.reasoning, thinking or Thinking(), messages
        )
        if tools:
            kwargs = {**kwargs, "tools": list(tools)}
        untrusted = [] if special else self._forging(_rendered_data(messages, tools or ()))

        def render(msgs: Sequence[Message]) -> str:
            return self._render(msgs, kwargs)

        try:
            try:
                parts = segments(render, messages, untrusted)
            except ValueError:
                # Some templates (Gemma 2, older Mistral) refuse a system role.
                if not any(m["role"] == "system" for m in messages):
                    raise
                parts = segments(render, merge_system(messages), untrusted)
        except Exception as exc:  # any failure inside a template: Jinja, types, raise_exception
            raise self._template_failed(f"{type(exc).__name__}: {exc}") from exc
        return self._tokenize_segments(parts, special=special, media=media)

    def media_tokens(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        """`text` tokenized with a MEDIA_SLOT for each MEDIA_MARKER in it: the text on
        either side of a marker is tokenized alone, as llama.cpp's mtmd does."""
        pieces = text.split(MEDIA_MARKER)
        tokens = self.tokenize(pieces[0], add_bos=add_bos, special=special)
        for piece in pieces[1:]:
            tokens.append(MEDIA_SLOT)
            tokens += self.tokenize(piece, add_bos=False, special=special)
        return tokens

    def _forging(self, texts: Sequence[str]) -> list[str]:
        """Those of `texts` that would read as control tokens in the template's text."""
        return [
            t
            for t in texts
            if self.tokenize(t, add_bos=False, special=True)
            != self.tokenize(t, add_bos=False, special=False)
        ]

    def _tokenize_segments(
        self, parts: Sequence[Segment], *, special: bool, media: bool = False
    ) -> tuple[list[int], int]:
        """As llama.cpp does: a template that writes the BOS text itself does not get a
        second one; BOS is added only where the vocabulary says the model wants it.
        Each segment is tokenized alone, so the tokens before the last message's content
        are the same whatever that content is: their count is returned too."""
        tokens: list[int] = []
        parts = list(parts)
        bos = self._llama.token_bos()
        if self._add_bos and bos >= 0:
            bos_text = self._text_of(bos)
            if parts and parts[0].special and bos_text and parts[0].text.startswith(bos_text):
                parts[0] = Segment(parts[0].text[len(bos_text) :], True)
            tokens.append(bos)
        last_content = max((i for i, part in enumerate(parts) if not part.special), default=-1)
        preamble = 0
        for i, part in enumerate(parts):
            if i == last_content:
                preamble = len(tokens)
            if media and not part.special:
                tokens += self.media_tokens(part.text, add_bos=False, special=special)
            else:
                tokens += self.tokenize(part.text, add_bos=False, special=part.special or special)
        return tokens, preamble

    # -- thinking ----------------------------------------------------------------------

    def _reasoning_format(self) -> tuple[ReasoningFormat | None, frozenset[int]]:
        """The thinking format, from the template and the marker tokens in the vocabulary;
        and those marker tokens (gpt-oss's channels), rendered as text even when they are
        control tokens, so that a splitter can see them."""
        candidates = (*reasoning.HARMONY_MARKERS, reasoning.OPEN_TAG, reasoning.CLOSE_TAG)
        ids: dict[str, int] = {}
        for text in candidates:
            tokens = self.tokenize(text, add_bos=False, special=True)
            if len(tokens) == 1 and self._text_of(tokens[0]) == text:
                ids[text] = tokens[0]
        fmt = reasoning.detect(self.chat_template, ids)
        # Tool-call markers that are control tokens ([TOOL_CALLS]...) are shown too: the
        # call parser reads them.
        calls = frozenset(self._marker_id(text) for text in CALL_MARKERS) - {None}
        if fmt is None:
            return None, frozenset(i for i in calls if i is not None)
        thinking = {ids[m] for m in fmt.markers if m in ids}
        return fmt, frozenset(i for i in calls | thinking if i is not None)

    def _marker_id(self, text: str) -> int | None:
        tokens = self.tokenize(text, add_bos=False, special=True)
        return tokens[0] if len(tokens) == 1 and self._text_of(tokens[0]) == text else None

    def splitter(self, prompt_tokens: Sequence[int]) -> Splitter | None:
        """A fresh splitter of thinking and answer for a generation after this prompt."""
        if self.reasoning is None:
            return None
        tail = self.prompt_text(prompt_tokens[-8:])
        return Splitter(self.reasoning, inside=reasoning.opens_thinking(tail, self.reasoning))


def _rendered_data(messages: Sequence[Message], tools: Sequence[dict[str, Any]]) -> list[str]:
    """What a template renders of the tools and earlier calls, as Jinja's `tojson` writes
    it (and the arguments as the client sent them)."""
    out: list[str] = []
    for tool in tools:
        out.append(json.dumps(tool, ensure_ascii=False))
        if isinstance(tool.get("function"), dict):
            out.append(json.dumps(tool["function"], ensure_ascii=False))
    for message in messages:
        for call in message.get("tool_calls", ()):
            function = call.get("function", {})
            arguments = function.get("arguments")
            out.append(
                arguments
                if isinstance(arguments, str)
                else json.dumps(arguments, ensure_ascii=False)
            )
    return out
