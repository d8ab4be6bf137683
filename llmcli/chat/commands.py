"""The slash commands: one table of commands and their handlers, which `/help`, Tab
completion and "did you mean" all read.

A handler does the pure part (the conversation, the settings). What needs the model,
the files or the screen comes back as an `Outcome.action` for the session to carry
out (`ChatSession` keeps the table of those).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from llmcli.chat.conversation import Conversation
from llmcli.chat.settings import (
    NONE_WORDS,
    SETTINGS,
    SettingError,
    apply_setting,
    describe,
    format_settings,
    setting_name,
    shown,
)
from llmcli.chat.suggest import did_you_mean
from llmcli.engine.reasoning import EFFORT_LEVELS, Thinking

Action = Literal["exit", "retry", "model", "save", "load", "show", "stats", "attach", "tools"]


@dataclass(frozen=True)
class Outcome:
    """What a slash command did or asks the chat loop to do."""

    info: str | None = None  # text for the user
    error: str | None = None  # one-line error; nothing changed
    action: Action | None = None  # work that needs the model, files or the screen
    argument: str = ""


Handler = Callable[[Conversation, str], Outcome]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    run: Handler
    aliases: tuple[str, ...] = ()
    # What Tab offers after the command.
    words: tuple[str, ...] = ()


def _help(conversation: Conversation, argument: str) -> Outcome:
    return Outcome(info=help_text())


def _system(conversation: Conversation, argument: str) -> Outcome:
    if not argument:
        current = conversation.system or "(none: the model's default)"
        return Outcome(info=f"system prompt: {current}")
    conversation.set_system(argument)
    return Outcome(info="system prompt set")


def _clear(conversation: Conversation, argument: str) -> Outcome:
    conversation.clear()
    return Outcome(info="conversation cleared")


def _set(conversation: Conversation, argument: str) -> Outcome:
    parts = argument.split()
    if not parts:
        return Outcome(info=format_settings(conversation.sampling))
    key = setting_name(parts[0])
    setting = SETTINGS.get(key)
    if setting is None:
        return Outcome(error=f"unknown setting {parts[0]!r}{did_you_mean(key, SETTINGS)}")
    if len(parts) != 2:
        value = getattr(conversation.sampling, setting.name)
        return Outcome(info=f"{key} is {shown(value)}: {setting.set_help} ({describe(setting)})")
    try:
        conversation.set_sampling(apply_setting(conversation.sampling, key, parts[1]))
    except SettingError as exc:
        return Outcome(error=str(exc))
    return Outcome(info=f"{key} set to {shown(getattr(conversation.sampling, setting.name))}")


def describe_thinking(thinking: Thinking) -> str:
    if thinking.enabled is None and thinking.effort is None:
        return "the model's default"
    state = {None: "", True: "on", False: "off"}[thinking.enabled]
    return ", ".join(p for p in (state, thinking.effort and f"{thinking.effort} effort") if p)


def _think(conversation: Conversation, argument: str) -> Outcome:
    word = argument.strip().lower()
    current = conversation.thinking
    if not word:
        if conversation.model_thinks is False:
            return Outcome(info="thinking: this model does not think")
        return Outcome(info=f"thinking: {describe_thinking(current)}")
    if word not in ("on", "true", "yes", "off", "false", "no", *EFFORT_LEVELS, *NONE_WORDS):
        return Outcome(error="usage: /think [on|off|low|medium|high|default]")
    if conversation.model_thinks is False:
        return Outcome(info="this model does not think; /think has no effect")
    if word in ("on", "true", "yes"):
        new = dataclasses.replace(current, enabled=True)
    elif word in ("off", "false", "no"):
        new = Thinking(enabled=False)
    elif word in EFFORT_LEVELS:
        new = Thinking(enabled=True, effort=word)
    elif word in NONE_WORDS:
        new = Thinking()
    else:
        return Outcome(error="usage: /think [on|off|low|medium|high|default]")
    conversation.thinking = new
    return Outcome(info=f"thinking: {describe_thinking(new)}")


def _asks(action: Action, *, needs_argument: bool = False) -> Handler:
    """A handler that hands the command to the session, with its argument."""

    def handler(conversation: Conversation, argument: str) -> Outcome:
        if needs_argument and not argument:
            return Outcome(error=f"usage: {BY_NAME[action].usage}")
        return Outcome(action=action, argument=argument)

    return handler


# In the order /help lists them.
COMMANDS: tuple[Command, ...] = (
    Command("help", "/help", "show this help", _help, ("?",)),
    Command("system", "/system [TEXT]", "set the system prompt (none: show it)", _system),
    Command("clear", "/clear", "forget the conversation (the system prompt stays)", _clear),
    Command(
        "set", "/set [NAME VALUE]", "change a setting (none: list them)", _set, words=(*SETTINGS,)
    ),
    Command("show", "/show", "settings and the model card", _asks("show")),
    Command(
        "think",
        "/think [on|off|LEVEL]",
        "let a reasoning model think or not; LEVEL low, medium, high (none: show it)",
        _think,
        words=("on", "off", *EFFORT_LEVELS, "default"),
    ),
    Command("stats", "/stats", "speed and context use of the last answer", _asks("stats")),
    Command("retry", "/retry", "answer the last message again", _asks("retry")),
    Command("tools", "/tools", "the tools the model may call (--tool-file, --mcp)", _asks("tools")),
    Command(
        "model",
        "/model REF",
        "switch to another model, keeping the conversation",
        _asks("model", needs_argument=True),
    ),
    Command(
        "attach",
        "/attach FILE",
        "send an image (or audio) with the next message; needs a projector (--mmproj)",
        _asks("attach", needs_argument=True),
    ),
    Command("save", "/save [FILE]", "save the conversation as JSON", _asks("save")),
    Command(
        "load", "/load FILE", "continue a saved conversation", _asks("load", needs_argument=True)
    ),
    Command("exit", "/exit", "leave (also /bye, Ctrl-D)", _asks("exit"), ("bye", "quit")),
)
BY_NAME: dict[str, Command] = {spec.name: spec for spec in COMMANDS}
# Every name a command answers to, aliases included.
_TYPED: dict[str, Command] = {
    alias: spec for spec in COMMANDS for alias in (spec.name, *spec.aliases)
}
# A command is a slash and a word: "/usr/bin/env is..." or "/5 of them" stay messages.
_COMMAND = re.compile(r"^/([A-Za-z]+|\?)(?:\s+(.*))?$", re.DOTALL)


def completions() -> dict[str, list[str]]:
    """Words Tab completes: every command, and what follows those that take a name."""
    return {f"/{spec.name}": list(spec.words) for spec in COMMANDS}


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


def dispatch(conversation: Conversation, text: str) -> Outcome | None:
    """Run a slash command's pure part. None: the text is a message, not a command."""
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    typed = match.group(1).lower()
    command = _TYPED.get(typed)
    if command is None:
        return Outcome(error=unknown_command(typed))
    return command.run(conversation, (match.group(2) or "").strip())


def unknown_command(typed: str) -> str:
    return f"unknown command /{typed}{did_you_mean(typed, _TYPED, '/')} (/help lists them)"
