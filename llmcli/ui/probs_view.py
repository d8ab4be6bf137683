"""An answer on a terminal with each token shaded by how likely the model found it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmcli.ui import console

if TYPE_CHECKING:
    from rich.text import Text

    from llmcli.engine.logprobs import TokenLogprob

# (lowest probability, style): likely tokens stay plain so that doubt stands out. Basic
# ANSI colours, so that terminals with 16 colours keep the order of the bands.
BANDS = (
    (0.9, ""),
    (0.5, "black on yellow"),
    (0.1, "white on magenta"),
    (0.0, "white on red"),
)


def style_for(probability: float) -> str:
    for lowest, style in BANDS:
        if probability >= lowest:
            return style
    return BANDS[-1][1]


class ProbsWriter:
    """Writes streamed chunks, shading each character by the token it came from.

    The chunks are the answer's text; `entries` (filled by the engine as it goes) hold
    each token's text in the same order, so the two are walked side by side. Text no
    token accounts for (a final replacement character) stays plain.
    """

    def __init__(self, entries: Sequence[TokenLogprob]) -> None:
        self.entries = entries
        self._index = 0
        self._offset = 0
        self._ended_with_newline = True

    def __enter__(self) -> ProbsWriter:
        return self

    def write(self, chunk: str) -> None:
        if not chunk:
            return
        out = console.stdout_console()
        out.print(self._styled(chunk), end="", soft_wrap=True)
        out.file.flush()
        self._ended_with_newline = chunk.endswith("\n")

    def _styled(self, chunk: str) -> Text:
        from rich.text import Text

        text = Text()
        rest = chunk
        while rest:
            if self._index >= len(self.entries):
                text.append(rest)
                break
            entry = self.entries[self._index]
            available = entry.text[self._offset :]
            if not available:
                self._index += 1
                self._offset = 0
                continue
            take = min(len(available), len(rest))
            text.append(rest[:take], style=style_for(entry.probability))
            self._offset += take
            rest = rest[take:]
        return text

    def __exit__(self, *exc: object) -> None:
        if not self._ended_with_newline:
            console.stdout_console().print()


def legend() -> Text:
    from rich.text import Text

    text = Text()
    text.append("token probability: ", style="dim")
    for label, p in (("90%+", 0.95), ("50–90%", 0.7), ("10–50%", 0.3), ("under 10%", 0.05)):
        text.append(f" {label} ", style=style_for(p) or "default")
        text.append(" ")
    return text


def print_legend() -> None:
    console.stderr_console().print(legend())
