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

    Lines break between words, never inside one: a word is shown once it ends, on the
    line it fits (the terminal would cut it at its edge).
    """

    def __init__(self, entries: Sequence[TokenLogprob]) -> None:
        self.entries = entries
        self._index = 0
        self._offset = 0
        self._column = 0
        # The word being written and the spaces before it, as (character, style).
        self._word: list[tuple[str, str]] = []
        self._spaces: list[tuple[str, str]] = []

    def __enter__(self) -> ProbsWriter:
        return self

    def write(self, chunk: str) -> None:
        if not chunk:
            return
        out = console.stdout_console()
        styled = self._styled(chunk)
        styles = [""] * len(styled.plain)
        for span in styled.spans:
            styles[span.start : span.end] = [str(span.style)] * (span.end - span.start)
        shown: list[tuple[str, str]] = []
        for char, style in zip(styled.plain, styles, strict=True):
            if char == "\n":
                self._place(shown, out.width, keep_spaces=True)
                shown.append((char, style))
                self._column = 0
            elif char.isspace():
                if self._word:
                    self._place(shown, out.width)
                self._spaces.append((char, style))
            else:
                self._word.append((char, style))
        self._print(shown)

    def _place(self, shown: list[tuple[str, str]], width: int, keep_spaces: bool = False) -> None:
        """Move the finished word, and the spaces before it, onto the line: the next
        line when it would cross the edge (the spaces are then dropped)."""
        from rich.cells import cell_len

        word_len = cell_len("".join(c for c, _ in self._word))
        spaces_len = cell_len("".join(c for c, _ in self._spaces))
        if self._column and self._column + spaces_len + word_len > width:
            if not self._word and keep_spaces:
                self._spaces = []  # trailing spaces that do not fit: the line ends anyway
            else:
                shown.append(("\n", ""))
                self._column = 0
                self._spaces = []
                spaces_len = 0
        shown.extend(self._spaces)
        self._column += spaces_len
        for char, style in self._word:  # a word longer than the line is cut at its edge
            if self._column + cell_len(char) > width and self._column:
                shown.append(("\n", ""))
                self._column = 0
            shown.append((char, style))
            self._column += cell_len(char)
        self._word, self._spaces = [], []

    def _print(self, shown: list[tuple[str, str]]) -> None:
        if not shown:
            return
        from itertools import groupby

        from rich.text import Text

        text = Text()
        for style, run in groupby(shown, key=lambda pair: pair[1]):
            text.append("".join(char for char, _ in run), style=style)
        out = console.stdout_console()
        out.print(text, end="", soft_wrap=True)
        out.file.flush()

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
        shown: list[tuple[str, str]] = []
        self._place(shown, console.stdout_console().width, keep_spaces=True)
        self._print(shown)
        if self._column:
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
