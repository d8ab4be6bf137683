"""The saved-chat file: a JSON format with a version, checked on the way in and
written atomically on the way out. `/save`, `/load`, `--load` and the last chat that
`--resume` continues all use it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmcli import config
from llmcli.atomic import write_atomic
from llmcli.chat.conversation import Conversation
from llmcli.chat.settings import SETTINGS, SettingError, apply_setting, settings_dict
from llmcli.engine.types import Message, Sampling
from llmcli.errors import LlmcliError

FORMAT = "llmcli-chat"
FORMAT_VERSION = 1
LAST_CHAT_FILE = "last_chat.json"


def last_chat_path() -> Path:
    """The conversation `llmcli chat --resume` continues; rewritten after every turn."""
    return config.user_data_dir() / LAST_CHAT_FILE


class ConversationFileError(LlmcliError):
    """A chat file that cannot be read or written; the message is one line."""


def to_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": conversation.model,
        "settings": settings_dict(conversation.sampling),
        "messages": [dict(m) for m in conversation.messages()],
    }


def from_json(data: object, source: str = "the file") -> Conversation:
    """Check and convert a saved conversation; any problem is one ConversationFileError."""

    def fail(why: str) -> ConversationFileError:
        return ConversationFileError(f"cannot load {source}: {why}")

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise fail(f'not an llmcli chat file (no "format": "{FORMAT}")')
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise fail("missing or invalid format version")
    if version > FORMAT_VERSION:
        raise fail(f"written by a newer llmcli (format {version}; this one reads {FORMAT_VERSION})")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise fail('"model" must be a string')
    sampling = _sampling_from(data.get("settings", {}), fail)
    raw = data.get("messages")
    if not isinstance(raw, list):
        raise fail('"messages" must be a list')
    system: str | None = None
    turns: list[Message] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("content"), str):
            raise fail(f'message {i + 1} needs a text "content"')
        role = item.get("role")
        if role == "system" and i == 0:
            system = item["content"]
        elif role in ("user", "assistant", "tool"):
            turns.append(_turn(item, role, f"message {i + 1}", fail))
            attached = item.get("attachments")
            if attached is not None:
                if not isinstance(attached, list) or not all(isinstance(a, str) for a in attached):
                    raise fail(f'message {i + 1}: "attachments" must be a list of file paths')
                turns[-1]["attachments"] = attached
        else:
            raise fail(f"message {i + 1} has an unexpected role {role!r}")
    return Conversation(model=model or None, system=system, turns=turns, sampling=sampling)


def _turn(
    item: dict[str, Any], role: str, where: str, fail: Callable[[str], ConversationFileError]
) -> Message:
    """A turn; an assistant's tool calls and a tool result's call id are kept, so that a
    resumed chat shows the model the calls it made and what they returned."""
    turn = Message(role=role, content=item["content"])
    if role == "tool":
        ident = item.get("tool_call_id")
        if not isinstance(ident, str):
            raise fail(f'{where} (a tool result) needs a "tool_call_id"')
        turn["tool_call_id"] = ident
    calls = item.get("tool_calls")
    if role == "assistant" and calls is not None:
        valid = isinstance(calls, list) and all(
            isinstance(c, dict)
            and isinstance(c.get("function"), dict)
            and isinstance(c["function"].get("name"), str)
            and isinstance(c["function"].get("arguments"), dict)
            for c in calls
        )
        if not valid:
            raise fail(f'{where} has "tool_calls" that are not calls with a name and arguments')
        turn["tool_calls"] = calls
    return turn


def _sampling_from(raw: object, fail: Callable[[str], ConversationFileError]) -> Sampling:
    if not isinstance(raw, dict):
        raise fail('"settings" must be an object')
    sampling = Sampling()
    for key, value in raw.items():
        if key in SETTINGS:
            try:
                sampling = apply_setting(sampling, key, value)
            except SettingError as exc:
                raise fail(str(exc)) from None
    stop = raw.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise fail('"stop" must be a list of texts')
    return dataclasses.replace(sampling, stop=tuple(stop))


def load(path: Path) -> Conversation:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConversationFileError(f"no such chat file: {path}") from None
    except IsADirectoryError:
        raise ConversationFileError(f"cannot load {path}: it is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConversationFileError(f"cannot load {path}: {why}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConversationFileError(
            f"cannot load {path}: not JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    return from_json(data, str(path))


def save(conversation: Conversation, path: Path) -> None:
    """Write atomically (a temporary file, then a rename): a crash or a full disk
    midway never leaves a half-written file in place of the previous one."""
    data = json.dumps(to_json(conversation), ensure_ascii=False, indent=2) + "\n"
    try:
        write_atomic(path, data, durable=True)
    except OSError as exc:
        raise ConversationFileError(f"cannot save to {path}: {exc.strerror or exc}") from None
