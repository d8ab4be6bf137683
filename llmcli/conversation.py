"""A chat as plain data: messages, settings, slash commands, context trimming and files.

Nothing here touches a terminal or a model, so all of it is unit-tested quickly;
`llmcli.commands.chat` wires it to the engine and the screen.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmcli import config, options_table
from llmcli.atomic import write_atomic
from llmcli.engine.reasoning import EFFORT_LEVELS, Thinking
from llmcli.engine.types import Message, Sampling
from llmcli.errors import LlmcliError
from llmcli.options_table import Option

FORMAT = "llmcli-chat"
FORMAT_VERSION = 1
LAST_CHAT_FILE = "last_chat.json"
HISTORY_FILE = "chat_history"


def last_chat_path() -> Path:
    """The conversation `llmcli chat --resume` continues; rewritten after every turn."""
    return config.user_data_dir() / LAST_CHAT_FILE


def history_path() -> Path:
    """Input history shared by every chat (Up-arrow recalls earlier sessions' lines)."""
    return config.user_data_dir() / HISTORY_FILE


class ConversationFileError(LlmcliError):
    """A chat file that cannot be read or written; the message is one line."""


class SettingError(ValueError):
    """A `/set` value, or a setting in a file, that is out of range."""


class MessageTooLong(LlmcliError):
    """One message (with the system prompt) does not fit in the context on its own."""

    def __init__(self, tokens: int, budget: int, n_ctx: int) -> None:
        super().__init__(
            f"this message is {tokens} tokens with the system prompt, but only {budget} of "
            f"the {n_ctx}-token context are left once room is kept for the answer",
            hint=f"shorten it, or restart the chat with --ctx {_round_up(tokens * 2)}",
        )
        self.tokens = tokens
        self.budget = budget


# -- the conversation ------------------------------------------------------------------


@dataclass
class Conversation:
    """System prompt, turns, sampling settings and the model reference of one chat.

    Turns are stored exactly as typed and as streamed: re-rendering them must give the
    same tokens the engine already holds in its KV cache, or every turn is re-evaluated.
    """

    model: str | None = None
    system: str | None = None
    turns: list[Message] = field(default_factory=list)
    sampling: Sampling = field(default_factory=Sampling)
    # Whether a reasoning model thinks, and how hard (/think); not saved with the chat.
    thinking: Thinking = field(default_factory=Thinking)
    # Set by every change; the chat loop saves the last conversation when it is set.
    dirty: bool = False

    def messages(self) -> list[Message]:
        head = [Message(role="system", content=self.system)] if self.system else []
        return head + [Message(role=m["role"], content=m["content"]) for m in self.turns]

    def ask(self, text: str) -> None:
        self.turns.append(Message(role="user", content=text))
        self.dirty = True

    def answer(self, text: str) -> None:
        self.turns.append(Message(role="assistant", content=text))
        self.dirty = True

    def drop_unanswered(self) -> None:
        """Remove a trailing user message that got no answer (an error, or Ctrl-C before
        the first word), so that roles keep alternating as most templates require."""
        if self.turns and self.turns[-1]["role"] == "user":
            self.turns.pop()
            self.dirty = True

    def prepare_retry(self) -> bool:
        """Drop the last answer so the last question can be answered again.
        False when there is no question to retry."""
        if self.turns and self.turns[-1]["role"] == "assistant":
            self.turns.pop()
        if not self.turns or self.turns[-1]["role"] != "user":
            return False
        self.dirty = True
        return True

    def clear(self) -> None:
        self.turns.clear()
        self.dirty = True

    def set_system(self, text: str | None) -> None:
        self.system = text or None
        self.dirty = True

    def set_sampling(self, sampling: Sampling) -> None:
        self.sampling = sampling
        self.dirty = True


# -- context trimming --------------------------------------------------------------------


def answer_reserve(n_ctx: int, max_tokens: int | None) -> int:
    """Tokens kept free for the answer: max_tokens, else a quarter of the context; never
    more than half, so a huge max_tokens still leaves room for the conversation."""
    wanted = max_tokens if max_tokens is not None else n_ctx // 4
    return max(1, min(wanted, n_ctx // 2))


@dataclass(frozen=True)
class Fit:
    tokens: list[int]
    dropped_messages: int


def fit_context(
    conversation: Conversation,
    render: Callable[[Sequence[Message]], list[int]],
    n_ctx: int,
) -> Fit:
    """Make the prompt fit, dropping the oldest turns (the system prompt stays).

    Once trimming is needed it goes down to three quarters of the budget rather than
    just under it: each trim changes the prompt's prefix and forces the whole history
    to be evaluated again, so trimming a little more means doing that rarely.
    Raises MessageTooLong, changing nothing, when the last message cannot fit at all.
    """
    budget = n_ctx - answer_reserve(n_ctx, conversation.sampling.max_tokens)
    tokens = render(conversation.messages())
    if len(tokens) <= budget:
        return Fit(tokens, 0)
    last = conversation.turns[-1:] if conversation.turns else []
    head = [Message(role="system", content=conversation.system)] if conversation.system else []
    alone = len(render(head + last))
    if alone > budget:
        raise MessageTooLong(alone, budget, n_ctx)
    goal = budget * 3 // 4
    dropped = 0
    while len(tokens) > goal and len(conversation.turns) > 1:
        # Drop one whole exchange so that the history still starts with a user turn.
        cut = 1
        while cut < len(conversation.turns) - 1 and conversation.turns[cut]["role"] != "user":
            cut += 1
        del conversation.turns[:cut]
        dropped += cut
        tokens = render(conversation.messages())
    conversation.dirty = True
    return Fit(tokens, dropped)


# -- settings ----------------------------------------------------------------------------


# What `/set` changes, and what a chat file keeps: the options table's chat settings,
# by their `/set` names.
SETTINGS: dict[str, Option] = options_table.SET


def describe(setting: Option) -> str:
    """The values a setting takes, e.g. "a number from 0 to 1"."""
    low = setting.minimum if setting.minimum is not None else 0
    high = setting.maximum
    span = f"{low:g} to {high:g}" if high is not None else f"{low:g} or more"
    what = "a whole number" if setting.kind is int else "a number"
    extra = " or 'none'" if setting.optional else ""
    return f"{what} from {span}{extra}"


_NONE_WORDS = ("none", "off", "random", "default")


def setting_name(typed: str) -> str:
    """`top-p`, `Top_P` and `top_p` all name the same setting."""
    return typed.strip().lower().replace("-", "_")


def check_setting(setting: Option, value: object) -> int | float | None:
    """A value from `/set` (text) or from a file (JSON), checked against the range."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
        if setting.optional:
            return None
        raise SettingError(f"{setting.set_name} needs {describe(setting)}")
    number: int | float
    if isinstance(value, str):
        try:
            number = float(value.strip()) if setting.kind is float else int(value.strip())
        except ValueError:
            raise SettingError(
                f"{setting.set_name} must be {describe(setting)}, not {value.strip()!r}"
            ) from None
    elif (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (setting.kind is int and not float(value).is_integer())
    ):
        raise SettingError(f"{setting.set_name} must be {describe(setting)}, not {value!r}")
    else:
        number = float(value) if setting.kind is float else int(value)
    if (
        not math.isfinite(number)
        or (setting.minimum is not None and number < setting.minimum)
        or (setting.maximum is not None and number > setting.maximum)
    ):
        raise SettingError(f"{setting.set_name} must be {describe(setting)}, not {value}")
    return number


def apply_setting(sampling: Sampling, name: str, value: object) -> Sampling:
    key = setting_name(name)
    setting = SETTINGS.get(key)
    if setting is None:
        raise SettingError(f"unknown setting {name!r}{_did_you_mean(key, SETTINGS)}")
    changes: dict[str, Any] = {setting.name: check_setting(setting, value)}
    return dataclasses.replace(sampling, **changes)


def settings_dict(sampling: Sampling) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(sampling, s.name) for name, s in SETTINGS.items()}
    values["stop"] = list(sampling.stop)
    return values


def format_settings(sampling: Sampling) -> str:
    parts = []
    for name, setting in SETTINGS.items():
        value = getattr(sampling, setting.name)
        parts.append(f"{name} {'none' if value is None else f'{value:g}'}")
    if sampling.stop:
        parts.append("stop " + ", ".join(repr(s) for s in sampling.stop))
    return " · ".join(parts)


# -- slash commands ------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str
    help: str
    aliases: tuple[str, ...] = ()


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("help", "/help", "show this help", ("?",)),
    CommandSpec("system", "/system [TEXT]", "set the system prompt (none: show it)"),
    CommandSpec("clear", "/clear", "forget the conversation (the system prompt stays)"),
    CommandSpec("set", "/set [NAME VALUE]", "change a setting (none: list them)"),
    CommandSpec("show", "/show", "settings and the model card"),
    CommandSpec(
        "think",
        "/think [on|off|LEVEL]",
        "let a reasoning model think or not; LEVEL low, medium, high (none: show it)",
    ),
    CommandSpec("stats", "/stats", "speed and context use of the last answer"),
    CommandSpec("retry", "/retry", "answer the last message again"),
    CommandSpec("model", "/model REF", "switch to another model, keeping the conversation"),
    CommandSpec("save", "/save [FILE]", "save the conversation as JSON"),
    CommandSpec("load", "/load FILE", "continue a saved conversation"),
    CommandSpec("exit", "/exit", "leave (also /bye, Ctrl-D)", ("bye", "quit")),
)
_BY_NAME: dict[str, str] = {
    alias: spec.name for spec in COMMANDS for alias in (spec.name, *spec.aliases)
}
# A command is a slash and a word: "/usr/bin/env is..." or "/5 of them" stay messages.
_COMMAND = re.compile(r"^/([A-Za-z]+|\?)(?:\s+(.*))?$", re.DOTALL)

Action = Literal["exit", "retry", "model", "save", "load", "show", "stats"]


@dataclass(frozen=True)
class Outcome:
    """What a slash command did or asks the chat loop to do."""

    info: str | None = None  # text for the user
    error: str | None = None  # one-line error; nothing changed
    action: Action | None = None  # work that needs the model, files or the screen
    argument: str = ""


def completions() -> dict[str, list[str]]:
    """Words Tab completes: every command, and what follows those that take a name."""
    words: dict[str, list[str]] = {f"/{spec.name}": [] for spec in COMMANDS}
    words["/set"] = list(SETTINGS)
    words["/think"] = ["on", "off", *EFFORT_LEVELS, "default"]
    return words


def help_text() -> str:
    width = max(len(spec.usage) for spec in COMMANDS)
    lines = [f"  {spec.usage.ljust(width)}  {spec.help}" for spec in COMMANDS]
    lines += [
        "",
        '  """ starts a multi-line message; end it with """. Alt-Enter (or Esc Enter) adds a line.',
        "  Ctrl-C stops an answer (the part shown is kept) or clears the line; Ctrl-D leaves.",
        "  Settings for /set: " + ", ".join(SETTINGS) + ".",
    ]
    return "\n".join(lines)


def is_command(text: str) -> bool:
    return _COMMAND.match(text.strip()) is not None


def dispatch(conversation: Conversation, text: str) -> Outcome | None:
    """Run a slash command's pure part. None: the text is a message, not a command."""
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    typed = match.group(1).lower()
    argument = (match.group(2) or "").strip()
    name = _BY_NAME.get(typed)
    if name is None:
        return Outcome(error=unknown_command(typed))
    if name == "help":
        return Outcome(info=help_text())
    if name == "system":
        if not argument:
            current = conversation.system or "(none: the model's default)"
            return Outcome(info=f"system prompt: {current}")
        conversation.set_system(argument)
        return Outcome(info="system prompt set")
    if name == "clear":
        conversation.clear()
        return Outcome(info="conversation cleared")
    if name == "set":
        return _set(conversation, argument)
    if name == "think":
        return _think(conversation, argument)
    if name == "exit":
        return Outcome(action="exit")
    if name in ("model", "load") and not argument:
        spec = next(s for s in COMMANDS if s.name == name)
        return Outcome(error=f"usage: {spec.usage}")
    action: Action = name  # type: ignore[assignment]  # the remaining names are actions
    return Outcome(action=action, argument=argument)


def unknown_command(typed: str) -> str:
    return f"unknown command /{typed}{_did_you_mean(typed, _BY_NAME, '/')} (/help lists them)"


def _did_you_mean(typed: str, names: Mapping[str, object], prefix: str = "") -> str:
    starts = sorted(n for n in names if n.startswith(typed)) if typed else []
    close = starts or difflib.get_close_matches(typed, list(names), n=1, cutoff=0.5)
    if not close:
        return ""
    if len(close) > 1:
        return "; did you mean " + " or ".join(f"{prefix}{n}" for n in close[:3]) + "?"
    return f"; did you mean {prefix}{close[0]}?"


def _set(conversation: Conversation, argument: str) -> Outcome:
    parts = argument.split()
    if not parts:
        return Outcome(info=format_settings(conversation.sampling))
    key = setting_name(parts[0])
    setting = SETTINGS.get(key)
    if setting is None:
        return Outcome(error=f"unknown setting {parts[0]!r}{_did_you_mean(key, SETTINGS)}")
    if len(parts) != 2:
        value = getattr(conversation.sampling, setting.name)
        return Outcome(
            info=f"{key} is {'none' if value is None else f'{value:g}'}: {setting.set_help} "
            f"({describe(setting)})"
        )
    try:
        conversation.set_sampling(apply_setting(conversation.sampling, key, parts[1]))
    except SettingError as exc:
        return Outcome(error=str(exc))
    value = getattr(conversation.sampling, setting.name)
    return Outcome(info=f"{key} set to {'none' if value is None else f'{value:g}'}")


def describe_thinking(thinking: Thinking) -> str:
    if thinking.enabled is None and thinking.effort is None:
        return "the model's default"
    state = {None: "", True: "on", False: "off"}[thinking.enabled]
    return ", ".join(p for p in (state, thinking.effort and f"{thinking.effort} effort") if p)


def _think(conversation: Conversation, argument: str) -> Outcome:
    word = argument.strip().lower()
    current = conversation.thinking
    if not word:
        return Outcome(info=f"thinking: {describe_thinking(current)}")
    if word in ("on", "true", "yes"):
        new = dataclasses.replace(current, enabled=True)
    elif word in ("off", "false", "no"):
        new = Thinking(enabled=False)
    elif word in EFFORT_LEVELS:
        new = Thinking(enabled=True, effort=word)
    elif word in _NONE_WORDS:
        new = Thinking()
    else:
        return Outcome(error="usage: /think [on|off|low|medium|high|default]")
    conversation.thinking = new
    return Outcome(info=f"thinking: {describe_thinking(new)}")


# -- multi-line input ----------------------------------------------------------------------

QUOTES = '"""'


def block_is_open(text: str) -> bool:
    """True while a message that started with \"\"\" has not been closed yet."""
    stripped = text.lstrip()
    if not stripped.startswith(QUOTES):
        return False
    return not stripped[len(QUOTES) :].rstrip().endswith(QUOTES)


def unwrap_block(text: str) -> str:
    """The message inside \"\"\" ... \"\"\", or the text unchanged."""
    stripped = text.strip()
    if (
        len(stripped) >= 2 * len(QUOTES)
        and stripped.startswith(QUOTES)
        and stripped.endswith(QUOTES)
    ):
        return stripped[len(QUOTES) : -len(QUOTES)].strip("\n")
    return text


class BlockReader:
    """Joins lines into messages for piped input: one line is one message, except
    inside a \"\"\" block."""

    def __init__(self) -> None:
        self._pending: list[str] = []

    def feed(self, line: str) -> str | None:
        """A complete message, or None while a block is still open."""
        self._pending.append(line.rstrip("\r\n"))
        text = "\n".join(self._pending)
        if block_is_open(text):
            return None
        self._pending.clear()
        return unwrap_block(text)

    def finish(self) -> str | None:
        """What is left at end of input: an unclosed block is still a message."""
        if not self._pending:
            return None
        text = "\n".join(self._pending).strip()
        self._pending.clear()
        return text[len(QUOTES) :].strip("\n") if text.startswith(QUOTES) else text


# -- files -----------------------------------------------------------------------------------


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
        elif role in ("user", "assistant"):
            turns.append(Message(role=role, content=item["content"]))
        else:
            raise fail(f"message {i + 1} has an unexpected role {role!r}")
    return Conversation(model=model or None, system=system, turns=turns, sampling=sampling)


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


def _round_up(n: int, step: int = 1024) -> int:
    return max(step, ((n + step - 1) // step) * step)
