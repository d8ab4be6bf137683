"""Models on the Hugging Face Hub and in the local cache: find, pull, list, remove.

The only package that imports `huggingface_hub`, and only inside functions so that
`llmcli --help` and shell completion do not pay for it.

Files live in the standard Hugging Face cache (`HF_HUB_CACHE`, else `HF_HOME/hub`), so
models other tools downloaded are found and ours are theirs.

Every file handed to the engine has had its SHA-256 checked (`integrity`); a file that
fails is never used.

    settings    where the Hub and the cache are (the environment, read on every call)
    integrity   SHA-256 checks of cached files, and the markers that remember them
    cached      the cache read from its folders: resolve a reference, name the models
    hub_client  the quick-fail HTTP client and the translation of the Hub's errors
    leftovers   partial files of interrupted downloads
    download    pull: download, verify, keep nothing unverified
    remote_header  a model's GGUF header read from the Hub, without downloading it
    inventory   list the cached models, plan their removal
"""

import importlib
from typing import TYPE_CHECKING, Any

from llmcli.store.cached import LocalModel, cached_model_names, find_cached, model_names

# Bound here, not on first use: importing the submodule of the same name would otherwise
# leave `store.leftovers` naming the module.
from llmcli.store.leftovers import Leftover, leftovers
from llmcli.store.settings import HubSettings

if TYPE_CHECKING:
    from llmcli.store.download import pull
    from llmcli.store.inventory import CachedModel, RemovalPlan, list_models, plan_removal
    from llmcli.store.remote_header import RemoteHeaders, remote_headers

# Imported when first used: running a cached model needs none of them, and together they
# are a tenth of that command's start-up.
_LATER = {
    "pull": "download",
    "CachedModel": "inventory",
    "RemovalPlan": "inventory",
    "list_models": "inventory",
    "plan_removal": "inventory",
    "RemoteHeaders": "remote_header",
    "remote_headers": "remote_header",
}


def __getattr__(name: str) -> Any:
    module = _LATER.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CachedModel",
    "HubSettings",
    "Leftover",
    "LocalModel",
    "RemoteHeaders",
    "RemovalPlan",
    "cached_model_names",
    "find_cached",
    "leftovers",
    "list_models",
    "model_names",
    "plan_removal",
    "pull",
    "remote_headers",
]
