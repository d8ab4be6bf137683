"""The project's exception types and the exit-code table.

Core modules raise these; `llmcli.cli.main` turns them into one line on stderr and the
exit code below. Nothing else decides exit codes.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented exit codes (README, "Exit codes")."""

    OK = 0
    ERROR = 1  # anything not covered below
    USAGE = 2  # bad option value, missing prompt (same code Click uses)
    MODEL_NOT_FOUND = 3  # local file, repo, file in a repo, alias or quant that does not exist
    MODEL_INVALID = 4  # not a GGUF, truncated/corrupt, hash mismatch
    CONTEXT_OVERFLOW = 5  # prompt does not fit in the context window
    NETWORK = 6  # offline and not cached, Hub unreachable, gated/private repo, no server (ps)
    DISK = 7  # disk full or cache not writable
    BATCH_ITEMS_FAILED = 8  # a batch finished, but some of its items failed
    OUTPUT_INVALID = 9  # the answer does not parse or match the requested JSON schema
    ENGINE_CRASH = 10  # llama.cpp faulted on this CPU (illegal instruction, segfault)
    WORKER_LOST = 11  # an RPC worker (--rpc) cannot be reached or was lost mid-answer
    DOES_NOT_FIT = 12  # fit, run, serve, pull: the model or context does not fit in memory now
    MEDIA_UNSUPPORTED = 13  # an attachment the model cannot read: no projector for it
    MEDIA_INVALID = 14  # an attachment that cannot be read or decoded
    TOOL_NOT_APPROVED = 15  # a tool call needs approval, and no terminal nor --yes gave it
    TOOL_SERVER = 16  # an MCP server (--mcp) failed to start or was lost mid-call
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    BROKEN_PIPE = 141  # stdout closed by the reader, e.g. `| head` (128 + SIGPIPE)


# One line per exit code, for `--help`-style references (the README table is generated
# from this, so the documentation cannot drift from the enum).
EXIT_CODE_DOCS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "unexpected error",
    ExitCode.USAGE: "usage error: bad option value, no prompt, invalid config file",
    ExitCode.MODEL_NOT_FOUND: (
        "model not found: local file, repo, file in a repo, alias or quantization"
    ),
    ExitCode.MODEL_INVALID: "invalid model: not a GGUF, truncated or corrupt, failed hash "
    "check; or a projector (`--mmproj`) made for another model",
    ExitCode.CONTEXT_OVERFLOW: "the prompt does not fit in the context window (raise `--ctx`)",
    ExitCode.NETWORK: (
        "network: offline and not cached, Hub unreachable, gated or private repo; no "
        "`llmcli serve` answers `ps` or `stop`"
    ),
    ExitCode.DISK: "disk full or cache not writable",
    ExitCode.BATCH_ITEMS_FAILED: "`run --batch` finished, but some items failed",
    ExitCode.OUTPUT_INVALID: "the answer does not match the requested JSON schema or format",
    ExitCode.ENGINE_CRASH: "the llama.cpp engine crashed or cannot run on this CPU; "
    "the next run avoids the setup that crashed",
    ExitCode.WORKER_LOST: "an RPC worker (`--rpc`) cannot be reached or was lost mid-answer",
    ExitCode.DOES_NOT_FIT: "the model at this context does not fit in the memory available "
    "now: `fit` still prints the plan; run, chat, serve and pull refuse before loading or "
    "downloading (`--no-memory-check` goes ahead)",
    ExitCode.MEDIA_UNSUPPORTED: "an image or audio file was attached, but the model has no "
    "projector for it (`--mmproj`)",
    ExitCode.MEDIA_INVALID: "an attached file cannot be read, or is not an image or audio "
    "file the projector can decode",
    ExitCode.TOOL_NOT_APPROVED: "a tool call needs approval and there is no terminal to ask "
    "(give `--yes` to run calls without asking); no tool ran",
    ExitCode.TOOL_SERVER: "an MCP server (`--mcp`) failed to start, or ended or was lost "
    "in the middle of a call",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
    ExitCode.BROKEN_PIPE: "stdout closed by its reader (e.g. `| head`)",
}


class LlmcliError(Exception):
    """An error with a message fit for the user and an exit code."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} ({self.hint})"


class UsageError(LlmcliError):
    exit_code = ExitCode.USAGE


class ConfigError(LlmcliError):
    """The config file does not parse or holds a value of the wrong type."""

    exit_code = ExitCode.USAGE


class ModelNotFoundError(LlmcliError):
    exit_code = ExitCode.MODEL_NOT_FOUND


class ModelInvalidError(LlmcliError):
    exit_code = ExitCode.MODEL_INVALID


class HeaderTruncatedError(ModelInvalidError):
    """The bytes given end before the GGUF header does: more of the file is needed."""


class ContextOverflowError(LlmcliError):
    exit_code = ExitCode.CONTEXT_OVERFLOW


class NetworkError(LlmcliError):
    exit_code = ExitCode.NETWORK


class DiskError(LlmcliError):
    exit_code = ExitCode.DISK


class OutputInvalidError(LlmcliError):
    exit_code = ExitCode.OUTPUT_INVALID


class EngineCrashError(LlmcliError):
    exit_code = ExitCode.ENGINE_CRASH


class ChatTemplateError(LlmcliError):
    """The model's chat template (or the one given with --template) fails to render."""


class WorkerLostError(LlmcliError):
    exit_code = ExitCode.WORKER_LOST


class DoesNotFitError(LlmcliError):
    exit_code = ExitCode.DOES_NOT_FIT


class MediaUnsupportedError(LlmcliError):
    exit_code = ExitCode.MEDIA_UNSUPPORTED


class MediaInvalidError(LlmcliError):
    exit_code = ExitCode.MEDIA_INVALID


class ToolNotApprovedError(LlmcliError):
    exit_code = ExitCode.TOOL_NOT_APPROVED


class ToolServerError(LlmcliError):
    exit_code = ExitCode.TOOL_SERVER


class BatchItemsFailedError(LlmcliError):
    exit_code = ExitCode.BATCH_ITEMS_FAILED


class OutputClosed(Exception):
    """stdout was closed by its reader (`| head`). Not an OSError on purpose: the CLI
    framework would otherwise turn it into exit 1 before llmcli sees it."""
