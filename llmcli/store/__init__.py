"""Models on the Hugging Face Hub and in the local cache: find, pull, list, remove.

The only package that imports `huggingface_hub`, and only inside functions so that
`llmcli --help` and shell completion do not pay for it.

Files live in the standard Hugging Face cache (`HF_HUB_CACHE`, else `HF_HOME/hub`), so
models other tools downloaded are found and ours are theirs.

Every file handed to the engine has had its SHA-256 checked (`llmcli.integrity`); a
file that fails is never used.

    settings    where the Hub and the cache are (the environment, read on every call)
    cached      the cache read from its folders: resolve a reference, name the models
    hub_client  the quick-fail HTTP client and the translation of the Hub's errors
    leftovers   partial files of interrupted downloads
    download    pull: download, verify, keep nothing unverified
    inventory   list the cached models, plan their removal
"""

from llmcli.store.cached import LocalModel, cached_model_names, find_cached, model_names
from llmcli.store.download import pull
from llmcli.store.inventory import CachedModel, RemovalPlan, list_models, plan_removal
from llmcli.store.leftovers import Leftover, leftovers
from llmcli.store.settings import HubSettings

__all__ = [
    "CachedModel",
    "HubSettings",
    "Leftover",
    "LocalModel",
    "RemovalPlan",
    "cached_model_names",
    "find_cached",
    "leftovers",
    "list_models",
    "model_names",
    "plan_removal",
    "pull",
]
