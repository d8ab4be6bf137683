"""An answer being generated: both the stream of its text and its result."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from types import TracebackType

from llmcli.engine.sequence import Part
from llmcli.engine.types import GenerationResult


class Generation:
    """Iterate it for ("thinking" | "answer", text) parts as they are generated; `result`
    holds what was produced so far, so a caller interrupted mid-stream still has it, and
    all of it once the parts are exhausted (`complete()` runs to the end). A model that
    does not think yields only answer text. Closing it stops the engine's work."""

    def __init__(self, parts: Generator[Part, None, None], result: GenerationResult) -> None:
        self._parts = parts
        self.result = result

    def __iter__(self) -> Iterator[Part]:
        return self

    def __next__(self) -> Part:
        return next(self._parts)

    def complete(self) -> GenerationResult:
        """Generate the whole answer and return the result."""
        for _ in self._parts:
            pass
        return self.result

    def close(self) -> None:
        self._parts.close()

    def __enter__(self) -> Generation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
