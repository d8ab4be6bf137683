"""Talking to the Hub: an HTTP client that gives up quickly on a Hub it cannot reach, and
the one translation of huggingface_hub's and the network's errors into llmcli's."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

from llmcli import config
from llmcli.errors import DiskError, LlmcliError, ModelNotFoundError, NetworkError
from llmcli.store.cached import cached_model_names
from llmcli.store.settings import HubSettings

# How long to wait for the Hub where huggingface_hub sets no limit (its listing requests
# wait forever on a server that accepts a connection and never answers): this to
# connect, `settings.ANSWER_TIMEOUT_S` for an answer. A healthy Hub connects and answers
# an API call well within these.
CONNECT_TIMEOUT_S = 2.0
_CONNECT_RETRY_DELAY_S = 0.2
_SILENT_MEMORY_S = 30.0  # a host that timed out fails at once for this long


# A first run without a network falls back to the starter model (llmcli.resolve.resolver);
# for this long after the Hub was found unreachable, runs that would fall back again skip
# the Hub checks (most of a second of connection attempts, each time). Any answer from the
# Hub forgets it at once.
UNREACHABLE_MEMORY_S = 600.0
_UNREACHABLE_FILE = "hub_unreachable"


def remember_unreachable(settings: HubSettings) -> None:
    """Note that the Hub at `settings.where` could not be reached just now."""
    path = config.user_cache_dir() / _UNREACHABLE_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(settings.where, encoding="utf-8")
    except OSError:
        pass  # only a shortcut is lost


def unreachable_lately(settings: HubSettings) -> float | None:
    """Seconds since the Hub at `settings.where` was found unreachable, if that was
    less than UNREACHABLE_MEMORY_S ago and nothing has reached it since."""
    path = config.user_cache_dir() / _UNREACHABLE_FILE
    try:
        age = time.time() - path.stat().st_mtime
        where = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return age if 0 <= age < UNREACHABLE_MEMORY_S and where == settings.where else None


def forget_unreachable(host: str) -> None:
    """The Hub at `host` answered: it is reachable again, if it was remembered not to be."""
    from urllib.parse import urlsplit

    path = config.user_cache_dir() / _UNREACHABLE_FILE
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if urlsplit(path.read_text(encoding="utf-8")).netloc == host:
            path.unlink()


class _HubUnreachable(Exception):
    """The Hub could not be reached at all: refused, unresolvable or silent.

    Deliberately not an httpx error: huggingface_hub retries those five times with
    growing pauses (23 s and a log line per try) before it gives up, which without a
    network only delays the same answer.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_installed_limits: tuple[float, float] | None = None


def quiet_library_log() -> None:
    """llmcli reports every failure in its own words, once: huggingface_hub's retry and
    resume warnings would only repeat it. HF_HUB_VERBOSITY or LLMCLI_DEBUG bring them
    back."""
    if not (config.debug_enabled() or os.environ.get("HF_HUB_VERBOSITY")):
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)


def install_http_client(settings: HubSettings) -> None:
    """Give huggingface_hub a shared HTTP client that bounds every wait and turns an
    unreachable Hub into `_HubUnreachable` after at most one short retry."""
    global _installed_limits
    limits = (CONNECT_TIMEOUT_S, settings.answer_timeout)
    if _installed_limits == limits:
        return
    import httpx2
    from huggingface_hub import get_session, set_client_factory

    # The library's own request hooks (offline mode, request ids) must keep running.
    hooks = {name: list(fns) for name, fns in get_session().event_hooks.items()}
    connect_s, answer_s = limits
    # Hosts that just timed out, with why and until when. Each process starts with a
    # best-effort request of the library's own (a registry fetch): when
    # that found the Hub silent, the listing right after it need not wait again.
    silent: dict[str, tuple[str, float]] = {}
    reached: list[str] = []  # hosts that answered: once is enough to know

    class QuickFailClient(httpx2.Client):
        def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
            host = request.url.netloc.decode()
            known = silent.get(host)
            if known is not None and time.monotonic() < known[1]:
                raise _HubUnreachable(known[0])
            # huggingface_hub passes `timeout=None` (no limit) for its API calls: those
            # wait `answer_s` at most, and so does its start-up registry fetch (3 s of
            # its own). A limit it sets for a file download is kept.
            timeout = dict(request.extensions.get("timeout") or {})
            timeout["connect"] = timeout.get("connect") or connect_s
            given = timeout.get("read")
            if "/resolve/" in request.url.path:
                timeout["read"] = given or answer_s
            else:
                timeout["read"] = min(given, answer_s) if given else answer_s
            request.extensions["timeout"] = timeout
            try:
                try:
                    response = super().send(request, **kwargs)
                except httpx2.ConnectError:
                    time.sleep(_CONNECT_RETRY_DELAY_S)  # a blip passes; an outage does not
                    response = super().send(request, **kwargs)
                if host not in reached:
                    reached.append(host)
                    forget_unreachable(host)
                return response
            except httpx2.ConnectError as e:
                raise _HubUnreachable(_connect_failure(e)) from e
            except httpx2.TimeoutException as e:
                if isinstance(e, httpx2.ConnectTimeout):
                    reason = f"no connection within {timeout['connect']:g} s"
                else:
                    reason = f"no answer within {timeout['read']:g} s"
                silent[host] = (reason, time.monotonic() + _SILENT_MEMORY_S)
                raise _HubUnreachable(reason) from e

    set_client_factory(
        lambda: QuickFailClient(event_hooks=hooks, follow_redirects=True, timeout=None)
    )
    _installed_limits = limits


def _connect_failure(error: BaseException) -> str:
    """Why a connection failed, in a few words, from the OS error underneath."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return str(error) or "no connection"


def _unreachable(settings: HubSettings, reason: str | None) -> NetworkError:
    """The one message for a Hub that cannot be reached, with what to do instead."""
    where = settings.where + (f": {reason}" if reason else "")
    if cached_model_names():
        instead = "cached models (llmcli list) work with HF_HUB_OFFLINE=1"
    else:
        from llmcli.starter import starter_path

        instead = "nothing is cached yet: run a local file with -m ./model.gguf"
        if starter_path() is not None:
            instead += ", or the small starter model with -m starter"
    return NetworkError(
        f"cannot reach the Hub at {where}",
        hint=f"check the network or HF_ENDPOINT; {instead}",
    )


@contextlib.contextmanager
def hub_errors(what: str, settings: HubSettings) -> Iterator[None]:
    """Translate huggingface_hub and network exceptions into llmcli's, one line each.

    Order matters: GatedRepoError is a RepositoryNotFoundError, and every HTTP error is
    also an OSError.
    """
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo = what.split(":")[0]
    try:
        yield
    except LlmcliError:
        raise
    except GatedRepoError as e:
        raise NetworkError(
            f"{repo} is gated: access needs approval on the Hub",
            hint="request access on its Hub page, then set HF_TOKEN to a token of that account",
        ) from e
    except RepositoryNotFoundError as e:
        raise ModelNotFoundError(
            f"model repo not found on the Hub: {repo}",
            hint="check the name; a private repo needs HF_TOKEN",
        ) from e
    except RevisionNotFoundError as e:
        raise ModelNotFoundError(f"revision not found in {repo}") from e
    except RemoteEntryNotFoundError as e:
        raise ModelNotFoundError(f"file not found on the Hub: {what}") from e
    except (OfflineModeIsEnabled, LocalEntryNotFoundError) as e:
        raise NetworkError(
            f"{what} is not in the cache and the Hub cannot be reached",
            hint="connect to the network, or unset HF_HUB_OFFLINE",
        ) from e
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise NetworkError(f"the Hub answered HTTP {status} for {what}") from e
    except _HubUnreachable as e:
        raise _unreachable(settings, e.reason) from e
    except (httpx2.TransportError, ConnectionError, TimeoutError) as e:
        raise _unreachable(settings, None) from e
    except OSError as e:
        raise os_error(e, settings) from e


def os_error(error: OSError, settings: HubSettings) -> LlmcliError:
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return DiskError(f"disk full while writing to {settings.cache_dir}")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return DiskError(
            f"cannot write to the model cache {settings.cache_dir}",
            hint="set HF_HUB_CACHE to a writable folder",
        )
    if "Consistency check failed" in str(error):  # huggingface_hub's size check
        return NetworkError("the download was cut short", hint="run the command again")
    return LlmcliError(f"{error.strerror or error}")
