"""The answers a completion script asks for, on every Tab press.

A script (see `scripts`) calls back into `llmcli` with `_LLMCLI_COMPLETE=<shell>_complete`
and the words typed so far; `llmcli.cli.main` hands that request to `respond` before
anything else runs. The protocol is Click's (BSD-3-Clause), adapted: bash also passes the
raw command line so that names with a colon (`qwen2.5:1.5b`) complete even though bash
splits words at colons.

This module runs on every Tab press: it must never import llama_cpp, huggingface_hub,
numpy or rich.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any, ClassVar

from llmcli.click_api import Command, CompletionItem, ShellComplete, split_arg_string
from llmcli.completion.scripts import COMPLETE_VAR, PROG_NAME, script


def _args_from_words() -> tuple[list[str], str]:
    """Click's protocol: the words so far and the index of the one being completed."""
    words = split_arg_string(os.environ.get("COMP_WORDS", ""))
    index = int(os.environ.get("COMP_CWORD", "0") or 0)
    args = words[1:index]
    incomplete = words[index] if index < len(words) else ""
    return args, incomplete


class _Answers(ShellComplete):
    """Answers only: `scripts.script` renders the scripts themselves."""

    # Abstract in Click's ShellComplete, so required, though only its unused `source()`
    # would read it.
    def source_vars(self) -> dict[str, Any]:
        return {"prog_name": self.prog_name, "complete_var": self.complete_var}


class _BashComplete(_Answers):
    name: ClassVar[str] = "bash"

    def get_completion_args(self) -> tuple[list[str], str]:
        line = os.environ.get("COMP_LINE")
        point = os.environ.get("COMP_POINT", "")
        if line is None or not point.isdigit():
            return _args_from_words()
        # Split the raw line ourselves: bash's COMP_WORDS breaks `qwen2.5:1.5b` into
        # three words. A character glued to the end tells "after a space" (a new, empty
        # word) from "inside a word or an open quote".
        words = split_arg_string(line[: int(point)] + "_")
        return words[1:-1], words[-1][:-1]

    def format_completion(self, item: CompletionItem) -> str:
        return f"{item.type},{item.value}"

    def complete(self) -> str:
        args, incomplete = self.get_completion_args()
        items = self.get_completions(args, incomplete)
        breaks = os.environ.get("COMP_WORDBREAKS")
        if "COMP_LINE" in os.environ and breaks:
            items = [_after_break(item, incomplete, breaks) for item in items]
        return "\n".join(self.format_completion(item) for item in items)


def _after_break(item: CompletionItem, typed: str, breaks: str) -> CompletionItem:
    """Bash replaces only the text after the last word-break character (`:` or `=`) of
    the word being completed, so the part before it must not be sent again."""
    cut = max((typed.rfind(ch) for ch in breaks if ch not in " \t\n\"'"), default=-1)
    if cut < 0 or item.type != "plain" or any(q in typed for q in "\"'\\"):
        return item
    kept = typed[: cut + 1]
    value = str(item.value)
    # The value completes what click saw, which is `typed` minus an `--option=` prefix.
    for start in range(len(typed) + 1):
        if value.startswith(typed[start:]):
            full = typed[:start] + value
            if full.startswith(kept):
                return CompletionItem(full[len(kept) :], type=item.type, help=item.help)
            break
    return item


class _ZshComplete(_Answers):
    name: ClassVar[str] = "zsh"

    def get_completion_args(self) -> tuple[list[str], str]:
        return _args_from_words()

    def format_completion(self, item: CompletionItem) -> str:
        help_ = " ".join((item.help or "_").split())
        # `_describe` splits value from help at the first unescaped colon; `compadd`
        # (used for items without help) takes the value as is.
        value = str(item.value).replace(":", r"\:") if help_ != "_" else str(item.value)
        return f"{item.type}\n{value}\n{help_}"


class _FishComplete(_Answers):
    name: ClassVar[str] = "fish"

    def get_completion_args(self) -> tuple[list[str], str]:
        words = split_arg_string(os.environ.get("COMP_WORDS", ""))
        incomplete = os.environ.get("COMP_CWORD", "")
        if incomplete:
            incomplete = split_arg_string(incomplete)[0]
        args = words[1:]
        # fish sends the partial word in both variables.
        if incomplete and args and args[-1] == incomplete:
            args.pop()
        return args, incomplete

    def format_completion(self, item: CompletionItem) -> str:
        if item.help:
            return f"{item.type},{item.value}\t{' '.join(item.help.split())}"
        return f"{item.type},{item.value}"


_CLASSES: dict[str, type[_BashComplete | _ZshComplete | _FishComplete]] = {
    "bash": _BashComplete,
    "zsh": _ZshComplete,
    "fish": _FishComplete,
}


def requested() -> str | None:
    """The completion instruction, when a shell script is asking for one."""
    return os.environ.get(COMPLETE_VAR) or None


def respond(cli: Command, instruction: str, ctx_args: MutableMapping[str, Any]) -> int:
    """Answer `<shell>_complete` or `<shell>_source` on stdout; the exit status."""
    shell, _, action = instruction.partition("_")
    cls = _CLASSES.get(shell)
    if cls is None or action not in ("complete", "source"):
        return 1
    if action == "source":
        print(script(shell))
    else:
        print(cls(cli, ctx_args, PROG_NAME, COMPLETE_VAR).complete())
    return 0
