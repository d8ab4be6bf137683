"""From a finished answer to the answer log: the one place `run`, its batches and `chat`
hand what they answered to `answer_log`, which writes it in the background."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from llmcli.answer_log.digest import file_digest
from llmcli.answer_log.entry import Entry, new_id
from llmcli.answer_log.recorder import Recorder
from llmcli.engine.types import GenerationResult, Message, Sampling
from llmcli.errors import UsageError


class AnswerLog:
    """The answers of one command, all in `conversation_id` (a new conversation unless
    one is being continued). Disabled, it records nothing and opens nothing."""

    def __init__(
        self,
        *,
        enabled: bool,
        command: str,
        model_name: str,
        model_path: Path | None,
        conversation_id: str | None = None,
    ) -> None:
        self.enabled = enabled
        self.command = command
        self.model_name = model_name
        self.model_path = model_path
        self.conversation_id = conversation_id or new_id()
        self._digest: str | None = None
        self._recorder = Recorder() if enabled else None

    def new_conversation(self) -> str:
        """An id for an answer that starts a conversation of its own (a batch line)."""
        return new_id()

    def add(
        self,
        *,
        prompt: str,
        system: str | None,
        result: GenerationResult,
        sampling: Sampling,
        started: float,
        interrupted: bool = False,
        options: dict[str, object] | None = None,
        conversation_id: str | None = None,
    ) -> None:
        """Log one answer, as far as it went (`interrupted`: Ctrl-C cut it); `started` is
        when it was asked for, on `time.perf_counter`'s clock."""
        if self._recorder is None:
            return
        if self._digest is None and self.model_path is not None:
            self._digest = file_digest(self.model_path)
        shaped: dict[str, object] = {
            k: v for k, v in dataclasses.asdict(sampling).items() if v not in (None, ())
        }
        shaped["seed"] = result.seed
        shaped.update(options or {})
        self._recorder.record(
            Entry(
                prompt=prompt,
                answer=result.text,
                model=self.model_name,
                command=self.command,
                conversation_id=conversation_id or self.conversation_id,
                system=system or None,
                reasoning=result.reasoning or None,
                model_digest=self._digest,
                options=shaped,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                ttft_s=round(result.ttft_s, 4) if result.completion_tokens else None,
                duration_s=round(time.perf_counter() - started, 4),
                finish_reason="interrupted" if interrupted else result.finish_reason,
            )
        )

    def close(self) -> str | None:
        """Wait briefly for the writes; why an answer was not logged, or None."""
        return None if self._recorder is None else self._recorder.close()


# The commands whose answers are turns of a conversation (`--continue` picks up the
# latest of these; a batch line or a server's answer stands alone).
CONVERSING = ("run", "chat")


@dataclass(frozen=True)
class EarlierTurns:
    conversation_id: str
    system: str | None
    messages: list[Message]


def earlier_turns(given: str | None) -> EarlierTurns:
    """The conversation with this id (or the start of one), or the latest one when
    `given` is None: its system prompt and its turns, as messages."""
    from llmcli.answer_log import database

    if not database.log_path().exists():
        raise UsageError("there is no conversation to continue: the answer log is empty")
    with database.opened() as conn:
        if given is None:
            found = database.latest_conversation(conn, CONVERSING)
            if found is None:
                raise UsageError("there is no conversation to continue in the answer log")
            cid = found
        else:
            cid = database.conversation_id(conn, given)
        entries = database.conversation(conn, cid)
    messages: list[Message] = []
    for entry in entries:
        messages.append(Message(role="user", content=entry.prompt))
        messages.append(Message(role="assistant", content=entry.answer))
    system = next((e.system for e in entries if e.system), None)
    return EarlierTurns(cid, system, messages)


def log_name(given: str | None, path: Path) -> str:
    """The name a model's answers are logged under: the name the user gave it, or the
    file's name for a local file (or the default model)."""
    if given and not given.endswith(".gguf") and not Path(given).expanduser().exists():
        return given
    return path.name
