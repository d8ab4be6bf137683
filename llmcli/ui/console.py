"""Consoles for stdout and stderr, one-line messages, and the streaming answer."""

from __future__ import annotations

import json
import re
import sys
from functools import cache
from typing import TYPE_CHECKING, Any, TextIO

from llmcli import terminal
from llmcli.errors import OutputClosed
from llmcli.ui.typeahead import echo_off

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live


@cache
def stdout_console() -> Console:
    from rich.console import Console

    term = terminal.current()
    return Console(
        file=sys.stdout,
        force_terminal=term.stdout_rich,
        no_color=not term.stdout_styled,
        highlight=False,
        soft_wrap=False,
    )


@cache
def stderr_console() -> Console:
    from rich.console import Console

    term = terminal.current()
    return Console(
        file=sys.stderr,
        force_terminal=term.stderr_isatty or term.force_color,
        no_color=not term.stderr_styled,
        highlight=False,
        stderr=True,
    )


def _plain_stderr(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def error(message: str) -> None:
    """One line on stderr. Kept free of Rich so it works even when Rich cannot load."""
    line = f"llmcli: error: {message}"
    if terminal.current().stderr_styled:
        line = f"\x1b[1;31mllmcli: error:\x1b[0m {message}"
    _plain_stderr(line)


def notice(message: str) -> None:
    """A remark for the person at the terminal; never on stdout."""
    line = f"llmcli: {message}"
    if terminal.current().stderr_styled:
        line = f"\x1b[2m{line}\x1b[0m"
    _plain_stderr(line)


def info(message: str) -> None:
    """A status line on stderr, without the program-name prefix (e.g. stats)."""
    _plain_stderr(message)


def _write_stdout(text: str, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError as exc:
        raise OutputClosed from exc


def emit_json(obj: Any) -> None:
    _write_stdout(json.dumps(obj, ensure_ascii=False) + "\n")


def emit_raw(text: str) -> None:
    """Text on stdout exactly as given."""
    _write_stdout(text)


def emit_text(text: str) -> None:
    _write_stdout(text if text.endswith("\n") else text + "\n")


# -- the streaming answer --------------------------------------------------------------

_FENCE = re.compile(r"^\s{0,3}(```|~~~)", re.MULTILINE)


def _last_block_boundary(text: str) -> int:
    """Index just after the last blank line that is not inside a fenced code block,
    or 0. Text before it will not change its Markdown rendering as more arrives."""
    best = 0
    start = 0
    while True:
        at = text.find("\n\n", start)
        if at < 0:
            return best
        if len(_FENCE.findall(text, 0, at)) % 2 == 0:
            best = at + 2
        start = at + 1


class AnswerWriter:
    """Writes an answer as it streams.

    Plain mode (stdout is not a terminal, or --plain): raw text, flushed per chunk, and a
    final newline. Markdown mode: finished blocks are printed once, for good; only the
    block still being written is redrawn, so long answers never leave duplicated lines.
    """

    def __init__(self, *, markdown: bool, out: TextIO | None = None) -> None:
        self.markdown = markdown
        self._out = out or sys.stdout
        self._text = ""
        self._committed = 0
        self._live: Live | None = None
        self._ended_with_newline = True

    def __enter__(self) -> AnswerWriter:
        if self.markdown:
            from rich.live import Live

            self._live = Live(
                console=stdout_console(),
                auto_refresh=True,
                refresh_per_second=12,
                transient=True,
                vertical_overflow="crop",
            )
            self._live.start()
        return self

    def write(self, chunk: str) -> None:
        if not chunk:
            return
        if not self.markdown:
            _write_stdout(chunk, self._out)
            self._ended_with_newline = chunk.endswith("\n")
            return
        self._text += chunk
        boundary = _last_block_boundary(self._text)
        if boundary > self._committed:
            self._print_markdown(self._text[self._committed : boundary])
            self._committed = boundary
        assert self._live is not None
        self._live.update(self._markdown(self._text[self._committed :]))

    def close(self) -> None:
        if self.markdown:
            if self._live is not None:
                self._live.update("")
                self._live.stop()
                self._live = None
            rest = self._text[self._committed :]
            if rest.strip():
                self._print_markdown(rest)
            self._committed = len(self._text)
        elif not self._ended_with_newline:
            self._ended_with_newline = True
            _write_stdout("\n", self._out)

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is OutputClosed:
            return  # nobody is reading any more
        self.close()

    @staticmethod
    def _markdown(text: str) -> Any:
        from rich.markdown import Markdown

        return Markdown(text.strip("\n"), code_theme="monokai")

    def _print_markdown(self, text: str) -> None:
        if not text.strip():
            return
        console = self._live.console if self._live is not None else stdout_console()
        console.print(self._markdown(text))


# -- a reasoning model's thinking --------------------------------------------------------


class ThinkingView:
    """A reasoning model's thinking, kept apart from the answer: always on stderr, never
    on stdout, so a pipeline reads the answer alone.

    show: the thinking itself streams to stderr (dimmed when styled). Otherwise, for a
    person watching stderr, one live line "thinking… 3.2 s" that folds to "thought for
    4.1 s" when the answer begins; for a stderr that is not a terminal, nothing.
    """

    REFRESH_S = 0.1

    def __init__(self, *, show: bool, err: TextIO | None = None) -> None:
        term = terminal.current()
        self.show = show
        self._err = err or sys.stderr
        self._live = not show and term.stderr_live
        self._styled = term.stderr_styled
        self._start: float | None = None
        self._drawn = 0.0
        self._ended_with_newline = True
        self.seconds = 0.0

    def write(self, text: str) -> None:
        if not text:
            return
        import time

        now = time.perf_counter()
        if self._start is None:
            self._start = now
        if self.show:
            self._put(f"\x1b[2m{text}\x1b[0m" if self._styled else text)
            self._ended_with_newline = text.endswith("\n")
        elif self._live and now - self._drawn >= self.REFRESH_S:
            self._drawn = now
            self._put(f"\r\x1b[2K{self._dim(f'thinking… {now - self._start:.1f} s')}")

    def done(self) -> None:
        """The thinking is over (the answer begins, or the generation ended)."""
        if self._start is None:
            return
        import time

        self.seconds = time.perf_counter() - self._start
        self._start = None
        if self.show:
            self._put("\n" if self._ended_with_newline else "\n\n")
        elif self._live:
            self._put(f"\r\x1b[2K{self._dim(f'thought for {self.seconds:.1f} s')}\n")

    def _dim(self, text: str) -> str:
        line = f"llmcli: {text}"
        return f"\x1b[2m{line}\x1b[0m" if self._styled else line

    def _put(self, text: str) -> None:
        try:
            self._err.write(text)
            self._err.flush()
        except (BrokenPipeError, ValueError):
            pass


class ReplyWriter:
    """One streamed reply: thinking through a ThinkingView, the answer through an
    AnswerWriter that starts only when the answer does (so a live Markdown view never
    shares the screen with the thinking line)."""

    def __init__(
        self, *, markdown: bool, show_thinking: bool = False, out: TextIO | None = None
    ) -> None:
        self.thinking = ThinkingView(show=show_thinking)
        self._answer = AnswerWriter(markdown=markdown, out=out)
        self._open = False
        # Keys typed meanwhile must not land in the reply (see ui.typeahead).
        self._echo_off = echo_off(out)

    def __enter__(self) -> ReplyWriter:
        self._echo_off.__enter__()
        return self

    def write(self, kind: str, text: str) -> None:
        if kind == "thinking":
            if not self._open:
                self.thinking.write(text)
            elif self.thinking.show:  # thinking again after the answer began: rare
                _plain_stderr(text)
            return
        self.thinking.done()
        if not self._open:
            self._answer.__enter__()
            self._open = True
        self._answer.write(text)

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            self.thinking.done()
            if self._open:
                self._answer.__exit__(exc_type, *rest)
        finally:
            self._echo_off.__exit__(None, None, None)
