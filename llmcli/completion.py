"""Shell completion: the scripts for bash, zsh and fish, and the answers they ask for.

A script calls back into `llmcli` with `_LLMCLI_COMPLETE=<shell>_complete` and the words
typed so far; `llmcli.cli.main` hands that request to `respond` before anything else
runs. The protocol and the scripts are Click's (BSD-3-Clause), adapted: bash also
passes the raw command line so that names with a colon (`qwen2.5:1.5b`) complete even
though bash splits words at colons, and every shell falls back to file names when
llmcli has nothing to offer (so `-m ./models/<Tab>` completes paths).

This module runs on every Tab press: it must never import llama_cpp, huggingface_hub,
numpy or rich.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any, ClassVar

from typer._click import Command
from typer._click.shell_completion import CompletionItem, ShellComplete, split_arg_string

PROG_NAME = "llmcli"
COMPLETE_VAR = "_LLMCLI_COMPLETE"
SHELLS = ("bash", "zsh", "fish")

_BASH = """\
%(complete_func)s() {
    local IFS=$'\\n'
    local response

    response=$(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD=$COMP_CWORD \\
COMP_LINE="$COMP_LINE" COMP_POINT=$COMP_POINT COMP_WORDBREAKS="$COMP_WORDBREAKS" \\
%(complete_var)s=bash_complete $1)

    for completion in $response; do
        IFS=',' read -r type value <<< "$completion"

        if [[ $type == 'dir' ]]; then
            COMPREPLY=()
            compopt -o dirnames
        elif [[ $type == 'file' ]]; then
            COMPREPLY=()
            compopt -o default
        elif [[ $type == 'plain' ]]; then
            COMPREPLY+=("$value")
        fi
    done

    return 0
}

%(complete_func)s_setup() {
    complete -o nosort -o default -F %(complete_func)s %(prog_name)s
}

%(complete_func)s_setup;
"""

_ZSH = """\
#compdef %(prog_name)s

%(complete_func)s() {
    local -a completions
    local -a completions_with_descriptions
    local -a response
    (( ! $+commands[%(prog_name)s] )) && return 1

    response=("${(@f)$(env COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT-1)) \\
%(complete_var)s=zsh_complete %(prog_name)s)}")

    if [[ -z "${response[*]}" ]]; then
        _files
        return
    fi

    for type key descr in ${response}; do
        if [[ "$type" == "plain" ]]; then
            if [[ "$descr" == "_" ]]; then
                completions+=("$key")
            else
                completions_with_descriptions+=("$key":"$descr")
            fi
        elif [[ "$type" == "dir" ]]; then
            _path_files -/
        elif [[ "$type" == "file" ]]; then
            _path_files -f
        fi
    done

    if [ -n "$completions_with_descriptions" ]; then
        _describe -V unsorted completions_with_descriptions -U
    fi

    if [ -n "$completions" ]; then
        compadd -U -V unsorted -a completions
    fi
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    # autoload from fpath, call function directly
    %(complete_func)s "$@"
else
    # eval/source/. command, register function for later
    compdef %(complete_func)s %(prog_name)s
fi
"""

_FISH = """\
function %(complete_func)s;
    set -l response (env %(complete_var)s=fish_complete COMP_WORDS=(commandline -cp) \\
COMP_CWORD=(commandline -t) %(prog_name)s);

    if test -z "$response";
        __fish_complete_path (commandline -ct);
        return;
    end;

    for completion in $response;
        set -l metadata (string split -m 1 "," -- $completion);

        if test $metadata[1] = "dir";
            __fish_complete_directories $metadata[2];
        else if test $metadata[1] = "file";
            __fish_complete_path $metadata[2];
        else if test $metadata[1] = "plain";
            echo $metadata[2];
        end;
    end;
end;

complete --no-files --command %(prog_name)s --arguments "(%(complete_func)s)";
"""


def _args_from_words() -> tuple[list[str], str]:
    """Click's protocol: the words so far and the index of the one being completed."""
    words = split_arg_string(os.environ.get("COMP_WORDS", ""))
    index = int(os.environ.get("COMP_CWORD", "0") or 0)
    args = words[1:index]
    incomplete = words[index] if index < len(words) else ""
    return args, incomplete


class _BashComplete(ShellComplete):
    name: ClassVar[str] = "bash"
    source_template: ClassVar[str] = _BASH

    def source_vars(self) -> dict[str, Any]:
        return _source_vars(self)

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


class _ZshComplete(ShellComplete):
    name: ClassVar[str] = "zsh"
    source_template: ClassVar[str] = _ZSH

    def source_vars(self) -> dict[str, Any]:
        return _source_vars(self)

    def get_completion_args(self) -> tuple[list[str], str]:
        return _args_from_words()

    def format_completion(self, item: CompletionItem) -> str:
        help_ = " ".join((item.help or "_").split())
        # `_describe` splits value from help at the first unescaped colon; `compadd`
        # (used for items without help) takes the value as is.
        value = str(item.value).replace(":", r"\:") if help_ != "_" else str(item.value)
        return f"{item.type}\n{value}\n{help_}"


class _FishComplete(ShellComplete):
    name: ClassVar[str] = "fish"
    source_template: ClassVar[str] = _FISH

    def source_vars(self) -> dict[str, Any]:
        return _source_vars(self)

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


def _source_vars(shell: ShellComplete) -> dict[str, Any]:
    return {
        "complete_func": shell.func_name,
        "complete_var": shell.complete_var,
        "prog_name": shell.prog_name,
    }


def script(cli: Command, shell: str) -> str:
    """The completion script for `shell`, as checked in under completions/."""
    return _CLASSES[shell](cli, {}, PROG_NAME, COMPLETE_VAR).source()


def requested() -> str | None:
    """The completion instruction, when a shell script is asking for one."""
    return os.environ.get(COMPLETE_VAR) or None


def respond(cli: Command, instruction: str, ctx_args: MutableMapping[str, Any]) -> int:
    """Answer `<shell>_complete` or `<shell>_source` on stdout; the exit status."""
    shell, _, action = instruction.partition("_")
    cls = _CLASSES.get(shell)
    if cls is None or action not in ("complete", "source"):
        return 1
    comp = cls(cli, ctx_args, PROG_NAME, COMPLETE_VAR)
    out = comp.source() if action == "source" else comp.complete()
    print(out)
    return 0


# --------------------------------------------------------------------------- model names


def complete_model(incomplete: str, *, cached_only: bool = False) -> list[tuple[str, str]]:
    """Model names for `-m` and the MODEL arguments: cached models first, then the
    user's aliases, then the built-in ones. Paths are left to the shell's file-name
    completion (the scripts fall back to it when this returns nothing)."""
    if incomplete.startswith(("/", ".", "~")):
        return []
    from llmcli import aliases, config, store
    from llmcli.errors import ConfigError

    found: dict[str, str] = {}
    for name in store.cached_model_names():
        found.setdefault(name, "cached")
    if cached_only:
        return [(name, help_) for name, help_ in found.items() if name.startswith(incomplete)]
    try:
        user = config.load().aliases
    except ConfigError:
        user = {}
    for name, target in user.items():
        found.setdefault(name, f"alias: {target}")
    for family, entry in aliases.FAMILIES.items():
        found.setdefault(family, f"{family}:{entry.default_tag}")
        for tag, target_ref in entry.tags.items():
            found.setdefault(f"{family}:{tag}", target_ref.repo_id)
    return [(name, help_) for name, help_ in found.items() if name.startswith(incomplete)]


# --------------------------------------------------------------------------- checked-in copies

SCRIPT_FILES = {"bash": "llmcli.bash", "zsh": "_llmcli", "fish": "llmcli.fish"}


def write_scripts(folder: os.PathLike[str] | str) -> None:
    """Regenerate completions/ (`python -m llmcli.completion [FOLDER]`)."""
    import typer

    from llmcli.cli import app

    cli = typer.main.get_command(app)
    for shell, name in SCRIPT_FILES.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as out:
            out.write(script(cli, shell))


if __name__ == "__main__":
    import sys

    write_scripts(sys.argv[1] if len(sys.argv) > 1 else "completions")
