"""Completions for option values: the model names offered after `-m` and MODEL.

Runs on every Tab press that completes a model: the store and the config are imported
only when asked.
"""

from __future__ import annotations


def complete_model(incomplete: str, *, cached_only: bool = False) -> list[tuple[str, str]]:
    """Model names for `-m` and the MODEL arguments: cached models first, then the
    starter when its package is installed, then the user's aliases, then the built-in
    ones. `cached_only` (what `rm` can delete) leaves the starter out: pip removes it.
    Paths are left to the shell's file-name completion (the scripts fall back to it when
    this returns nothing)."""
    if incomplete.startswith(("/", ".", "~")):
        return []
    from llmcli import aliases, config, starter, store
    from llmcli.errors import ConfigError

    found: dict[str, str] = {}
    for name in store.cached_model_names():
        found.setdefault(name, "cached")
    if cached_only:
        return [(name, help_) for name, help_ in found.items() if name.startswith(incomplete)]
    if starter.starter_path() is not None:
        found.setdefault(starter.NAME, f"installed: {starter.DESCRIPTION}")
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
