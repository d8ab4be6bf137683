"""`/attach FILE` in the chat: files that go with the next message, and prompts with them.

A message sent after `/attach` starts with a MEDIA_MARKER per file, and the turn keeps
the files' paths (`attachments`), so that the chat file holds them and every later
prompt reads them again. A prompt whose turns hold attachments is expanded by the
projector (see engine.vision); the last one rendered is what the answer evaluates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llmcli.engine.types import MEDIA_MARKER, Message
from llmcli.errors import MediaInvalidError, MediaUnsupportedError

if TYPE_CHECKING:
    from llmcli.engine.model import Model
    from llmcli.engine.reasoning import Thinking
    from llmcli.engine.vision import Attachment, MediaPrompt


class ChatMedia:
    """The projector of the chat's model, the files waiting for the next message, and
    the prompt with attachments rendered last."""

    def __init__(self, projector: Path | None) -> None:
        self.projector = projector
        self.pending: list[Path] = []
        self.prompt: MediaPrompt | None = None

    def attach(self, argument: str) -> str:
        """Queue a file for the next message; what to tell the user."""
        if self.projector is None:
            raise MediaUnsupportedError(
                "this model has no projector, so it cannot read attachments",
                hint="restart the chat with --mmproj FILE, or /model a vision model",
            )
        path = Path(argument).expanduser().resolve()
        _read(path)
        self.pending.append(path)
        return f"attached {path.name}: it goes with your next message"

    def take(self, text: str) -> tuple[str, list[str]]:
        """The next message's content and its attachments; nothing is pending after."""
        files = [str(p) for p in self.pending]
        self.pending = []
        return MEDIA_MARKER * len(files) + text, files

    def render(self, llm: Model, messages: Sequence[Message], thinking: Thinking) -> list[int]:
        """The prompt's tokens: with attachments, expanded by the projector (kept as
        `prompt` for the answer)."""
        self.release()
        files = [f for m in messages for f in m.get("attachments", ())]
        if not files:
            return llm.chat_tokens(messages, thinking=thinking)
        if self.projector is None:
            raise MediaUnsupportedError("this model has no projector to read the attachments")
        tokens, _ = llm.chat_prompt(messages, thinking=thinking, media=True)
        llm.use_projector(self.projector)
        self.prompt = llm.media_prompt(tokens, [_read(Path(f)) for f in files])
        return self.prompt.tokens

    def release(self) -> None:
        if self.prompt is not None:
            self.prompt.close()
            self.prompt = None


def _read(path: Path) -> Attachment:
    from llmcli.engine.vision import Attachment

    try:
        return Attachment(path.name, path.read_bytes())
    except OSError as exc:
        raise MediaInvalidError(f"cannot read {path}: {exc.strerror or exc}") from exc
