"""Tokens as people can read them: id, bytes and text.

A token is a run of bytes, not of characters: one character of Chinese or an emoji is
often split over two or three tokens. Each token's text therefore shows bytes that are
not a whole character as `<0xE6>`, and `spans` groups neighbouring tokens that only make
whole characters together, so a view can show the character once.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

from llmcli.engine.model import Model
from llmcli.engine.pieces import piece_text
from llmcli.engine.types import LoadOptions


@dataclass(frozen=True)
class Token:
    id: int
    data: bytes
    text: str
    # A control token (<|im_end|>, BOS...): not text the user wrote.
    control: bool = False


@dataclass(frozen=True)
class Span:
    """Neighbouring tokens that together make whole characters (usually just one token)."""

    tokens: tuple[Token, ...]
    text: str


def spans(tokens: Sequence[Token]) -> list[Span]:
    """Group tokens so that a character split across tokens is shown once, correctly."""
    out: list[Span] = []
    pending: list[Token] = []
    data = b""
    for token in tokens:
        pending.append(token)
        data += token.data
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            decoder.decode(data, final=False)
        except UnicodeDecodeError:  # invalid, not just unfinished: give up on grouping
            out += [Span((t,), t.text) for t in pending]
            pending, data = [], b""
            continue
        state, _ = decoder.getstate()
        if state:  # ends inside a character: wait for the next token
            continue
        out.append(Span(tuple(pending), piece_text(data)))
        pending, data = [], b""
    out += [Span((t,), t.text) for t in pending]  # a character the text left unfinished
    return out


def load_vocab(path: Path, *, verbose: bool = False) -> Model:
    """A Model with the tokenizer only: no weights are read, so big models load fast."""
    # The context is still created by the bindings; with no layers it costs nothing,
    # but keep it small anyway.
    return Model(LoadOptions(path=path, n_ctx=64, n_batch=64, vocab_only=True, verbose=verbose))


def describe(model: Model, ids: Sequence[int]) -> list[Token]:
    """Each token id with its bytes and readable text."""
    vocab = model.vocab
    tokens = []
    for token_id in ids:
        control = bool(llama_cpp.llama_vocab_is_control(vocab, token_id))
        # Control tokens render as their name (<|im_end|>); plain ones as their bytes.
        data = model.token_bytes(token_id, special=control)
        tokens.append(Token(token_id, data, piece_text(data), control))
    return tokens


def tokenize(model: Model, text: str, *, special: bool = False) -> list[Token]:
    """The tokens the model sees for `text` (with BOS when the model adds one).

    `special`: spell-outs of control tokens such as `<|im_end|>` become those tokens;
    otherwise they are ordinary text.
    """
    return describe(model, model.tokenize(text, add_bos=True, special=special))


# Tokenizers whose every token stands for exactly its own bytes of the text (space marks
# turned back into spaces). WPM and UGM drop or fold whitespace and merge unknown
# characters into one token, so a text's length says nothing about their token count.
_BYTE_EXACT = (llama_cpp.LLAMA_VOCAB_TYPE_SPM, llama_cpp.LLAMA_VOCAB_TYPE_BPE)


def max_token_bytes(model: Model) -> int:
    """The most bytes of text one token can stand for, control tokens' names included:
    a text of more than `n * max_token_bytes` bytes cannot be `n` tokens or fewer.
    0 when the model's tokenizer gives no such bound."""
    vocab = model.vocab
    if llama_cpp.llama_vocab_type(vocab) not in _BYTE_EXACT:
        return 0
    n_tokens = llama_cpp.llama_vocab_n_tokens(vocab)
    return max(len(model.token_bytes(t, special=True)) for t in range(n_tokens))
