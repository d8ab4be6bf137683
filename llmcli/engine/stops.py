"""Stop strings over streamed text: hold back only what could still become a stop."""

from __future__ import annotations


class StopScanner:
    """Feed text pieces; get back the text that is safe to show.

    Text that might be the start of a stop string is held until the next piece settles it.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._pending = ""
        self.stopped = False
        # The stop string found (the earliest in the text), once stopped.
        self.matched: str | None = None

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        if not self._stops:
            return piece
        text = self._pending + piece
        found = [(i, s) for s in self._stops if (i := text.find(s)) >= 0]
        if found:
            cut, self.matched = min(found, key=lambda hit: hit[0])
            self.stopped = True
            self._pending = ""
            return text[:cut]
        hold = self._longest_partial_suffix(text)
        self._pending = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold]

    def flush(self) -> str:
        """The held-back text, once generation has ended without a stop."""
        text, self._pending = self._pending, ""
        return "" if self.stopped else text

    def _longest_partial_suffix(self, text: str) -> int:
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best
