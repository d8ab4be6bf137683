"""The completion scripts for bash, zsh and fish: `llmcli completion SHELL` prints one,
completions/ holds them checked in.

The scripts are Click's (BSD-3-Clause), adapted: bash also passes the raw command line
(see `protocol`), and every shell falls back to file names when llmcli has nothing to
offer (so `-m ./models/<Tab>` completes paths). A script names only the program and the
variable it calls back with, so rendering one needs neither the app nor Click.
"""

from __future__ import annotations

import os

PROG_NAME = "llmcli"
COMPLETE_VAR = "_LLMCLI_COMPLETE"
SCRIPT_FILES = {"bash": "llmcli.bash", "zsh": "_llmcli", "fish": "llmcli.fish"}

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


_TEMPLATES = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}


def script(shell: str) -> str:
    """The completion script for `shell`, as checked in under completions/."""
    return _TEMPLATES[shell] % {
        "complete_func": f"_{PROG_NAME}_completion",
        "complete_var": COMPLETE_VAR,
        "prog_name": PROG_NAME,
    }


def write_scripts(folder: os.PathLike[str] | str) -> None:
    """Regenerate completions/ (`python -m llmcli.completion [FOLDER]`)."""
    for shell, name in SCRIPT_FILES.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as out:
            out.write(script(shell))
