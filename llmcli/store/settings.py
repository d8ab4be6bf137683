"""Where the Hub and the cache are, read from the environment on every call."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from llmcli.errors import UsageError

_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's spelling of "true" in env vars

# How long to wait for the Hub's answer where huggingface_hub sets no limit (see
# hub_client). HF_HUB_ETAG_TIMEOUT, huggingface_hub's own knob, overrides it. The Hub's
# API answers in well under a second; 2 s keeps a silent endpoint's verdict, with the
# start-up before it, under 3 s.
ANSWER_TIMEOUT_S = 2.0
_WHOLE_SECONDS = ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")


@dataclass(frozen=True)
class HubSettings:
    """The Hub environment, read at call time.

    huggingface_hub reads its environment variables once, at import; reading them here
    on every call and passing them explicitly means a change (a test, an embedding
    program) is honoured even after the library was imported.
    """

    endpoint: str | None
    cache_dir: Path
    offline: bool
    token: str | bool | None
    answer_timeout: float = ANSWER_TIMEOUT_S

    @classmethod
    def from_env(cls) -> HubSettings:
        env = os.environ
        cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
        if not cache:
            home = env.get("HF_HOME") or os.path.join(
                env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface"
            )
            cache = os.path.join(home, "hub")
        token: str | bool | None = env.get("HF_TOKEN") or None
        if token is None and env.get("HF_HUB_DISABLE_IMPLICIT_TOKEN", "").upper() in _TRUE:
            token = False  # send no token at all, not even the one saved by `hf auth login`
        for name in _WHOLE_SECONDS:
            value = env.get(name, "").strip()
            if value and not value.isdigit():
                # huggingface_hub reads these as integers when it is imported, and fails
                # with a bare ValueError from inside its own import otherwise.
                raise UsageError(f"{name} must be a whole number of seconds, not {value!r}")
        answer_timeout = float(env.get("HF_HUB_ETAG_TIMEOUT") or ANSWER_TIMEOUT_S)
        return cls(
            endpoint=env.get("HF_ENDPOINT", "").rstrip("/") or None,
            cache_dir=Path(cache).expanduser(),
            offline=env.get("HF_HUB_OFFLINE", "").upper() in _TRUE,
            token=token,
            answer_timeout=answer_timeout if answer_timeout > 0 else ANSWER_TIMEOUT_S,
        )

    @property
    def where(self) -> str:
        return self.endpoint or "https://huggingface.co"


def repo_cache_dir(settings: HubSettings, repo_id: str) -> Path:
    return settings.cache_dir / ("models--" + repo_id.replace("/", "--"))
