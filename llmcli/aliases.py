"""Built-in model names, ollama-style: `family[:tag]` -> a public GGUF repo on the Hub.

A Python table rather than a TOML file: `tomllib` only exists from Python 3.11 and the
project supports 3.10, and a dict needs no parsing at start-up.

Every repo below is public and ungated. `quant` is the quantization picked in that repo;
None means the default preference order in `llmcli.quants`. Repos were chosen for a full
range of quantizations with conventional file names (bartowski, unsloth) or because they
are the publisher's own (Qwen, nomic-ai).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AliasTarget:
    repo_id: str
    quant: str | None = None
    kind: str = "chat"  # "chat" or "embedding"; informational (shown by `list`)


@dataclass(frozen=True)
class Family:
    default_tag: str  # the tag a bare family name means (ollama's "latest")
    tags: dict[str, AliasTarget]


FAMILIES: dict[str, Family] = {
    "smollm2": Family(
        "135m",
        {
            "135m": AliasTarget("bartowski/SmolLM2-135M-Instruct-GGUF", "Q4_K_M"),
            "360m": AliasTarget("bartowski/SmolLM2-360M-Instruct-GGUF", "Q4_K_M"),
            "1.7b": AliasTarget("bartowski/SmolLM2-1.7B-Instruct-GGUF", "Q4_K_M"),
        },
    ),
    "qwen2.5": Family(
        "1.5b",
        {
            "0.5b": AliasTarget("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "Q4_K_M"),
            "1.5b": AliasTarget("Qwen/Qwen2.5-1.5B-Instruct-GGUF", "Q4_K_M"),
            "3b": AliasTarget("Qwen/Qwen2.5-3B-Instruct-GGUF", "Q4_K_M"),
        },
    ),
    # A model that thinks before it answers (<think> tags; --think/--no-think switch it).
    # The publisher's repo holds the 0.6B at Q8_0 alone.
    "qwen3": Family(
        "0.6b",
        {"0.6b": AliasTarget("Qwen/Qwen3-0.6B-GGUF", "Q8_0")},
    ),
    "llama3.2": Family(
        "1b",
        {
            "1b": AliasTarget("bartowski/Llama-3.2-1B-Instruct-GGUF", "Q4_K_M"),
            "3b": AliasTarget("bartowski/Llama-3.2-3B-Instruct-GGUF", "Q4_K_M"),
        },
    ),
    "gemma3": Family(
        "1b",
        {"1b": AliasTarget("unsloth/gemma-3-1b-it-GGUF", "Q4_K_M")},
    ),
    "phi3.5": Family(
        "3.8b",
        {"3.8b": AliasTarget("bartowski/Phi-3.5-mini-instruct-GGUF", "Q4_K_M")},
    ),
    "mistral": Family(
        "7b",
        {"7b": AliasTarget("bartowski/Mistral-7B-Instruct-v0.3-GGUF", "Q4_K_M")},
    ),
    # Embedding models are small, and quantizing them costs retrieval quality: F16 is
    # what ollama ships for these too.
    "nomic-embed-text": Family(
        "v1.5",
        {"v1.5": AliasTarget("nomic-ai/nomic-embed-text-v1.5-GGUF", "F16", "embedding")},
    ),
    "bge-small": Family(
        "en-v1.5",
        {"en-v1.5": AliasTarget("CompendiumLabs/bge-small-en-v1.5-gguf", "F16", "embedding")},
    ),
}

# The chat model used when neither `-m` nor LLMCLI_MODEL names one. Qwen2.5 1.5B Instruct
# at Q4_K_M is ~1.1 GB: small enough for any laptop and fast on a CPU, yet it follows
# instructions, keeps to a chat template, handles many languages and has a 32k context.
# The SmolLM2 models are smaller but noticeably weaker at all of that.
DEFAULT_MODEL = "qwen2.5:1.5b"


def all_names() -> list[str]:
    """Every accepted spelling: bare family names and `family:tag`."""
    names: list[str] = []
    for family, entry in FAMILIES.items():
        names.append(family)
        names.extend(f"{family}:{tag}" for tag in entry.tags)
    return names


def alias_for(repo_id: str, quant: str | None) -> str | None:
    """The canonical `family:tag` that names this repo and quant, if any (for `list`)."""
    for family, entry in FAMILIES.items():
        for tag, target in entry.tags.items():
            if target.repo_id.lower() != repo_id.lower():
                continue
            if target.quant is None or quant is None or target.quant.upper() == quant.upper():
                return f"{family}:{tag}"
    return None
