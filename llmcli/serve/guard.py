"""What a web page may make a browser send to the server, decided from the headers alone.

Any page the user visits can make the browser send requests to 127.0.0.1; only the
browser's own rules stand between that page and the model. Three doors stay shut, as in
ollama: a Host that names no address of this server (DNS rebinding: a name the attacker
controls, re-pointed at 127.0.0.1) when no API key guards the server; a body that is not
JSON (the content types a page may send without asking the server first); and an Origin
the user has not allowed. Plain functions of header values, so the rules read in one place.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# Names that always mean this machine: browsers resolve `*.localhost` to loopback
# themselves, so no DNS answer can re-point them.
_LOCAL_NAMES = ("localhost",)
ANY = "*"
PREFLIGHT_METHODS = "GET, POST, OPTIONS"
PREFLIGHT_MAX_AGE_S = 600
_DEFAULT_HEADERS = "authorization, content-type"
# The only media type a request body may declare (a missing Content-Type is accepted).
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Policy:
    # Host names (lower case, no port) accepted besides IP addresses and localhost;
    # None: any Host, as when an API key guards the server.
    hosts: frozenset[str] | None
    # Origins (scheme://host[:port]) a page may call from; "*" allows every origin.
    origins: frozenset[str]

    @classmethod
    def make(
        cls, *, keyed: bool, bound_host: str, hosts: tuple[str, ...], origins: tuple[str, ...]
    ) -> Policy:
        names = {host_name(h) for h in (*hosts, bound_host)}
        open_hosts = keyed or ANY in hosts
        return cls(
            hosts=None if open_hosts else frozenset(n for n in names if n),
            origins=frozenset(_origin(o) for o in origins),
        )


def host_name(header: str) -> str:
    """`Example.COM:8080` -> `example.com`, `[::1]:80` -> `::1`."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def host_allowed(policy: Policy, header: str | None) -> bool:
    if policy.hosts is None or header is None:
        return True  # only browsers are the threat here, and every browser sends a Host
    name = host_name(header)
    try:
        ipaddress.ip_address(name)
        # DNS rebinding needs a name: a page at an address is another origin, which the
        # Origin check refuses.
        return True
    except ValueError:
        pass
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return True
    return name in policy.hosts


def _origin(value: str) -> str:
    return value.strip().rstrip("/").lower()


def origin_allowed(policy: Policy, origin: str, host: str | None) -> bool:
    """Whether a page from `origin` may call: an allowed origin, or the server's own."""
    wanted = _origin(origin)
    if ANY in policy.origins or wanted in policy.origins:
        return True
    return host is not None and wanted in (f"http://{host.lower()}", f"https://{host.lower()}")


def preflight_headers(requested: str | None) -> dict[str, str]:
    """The answer to a browser's OPTIONS request from an allowed origin (besides
    cors_headers, which every answer to that origin carries)."""
    allowed = requested if requested and _is_header_list(requested) else _DEFAULT_HEADERS
    return {
        "Access-Control-Allow-Methods": PREFLIGHT_METHODS,
        "Access-Control-Allow-Headers": allowed,
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
    }


def cors_headers(origin: str) -> dict[str, str]:
    # The origin itself, not "*": a page that sends an API key needs its own origin named.
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def _is_header_list(value: str) -> bool:
    return all(
        name.strip() and all(c.isalnum() or c in "-_" for c in name.strip())
        for name in value.split(",")
    )


def is_json(content_type: str | None) -> bool:
    if content_type is None:
        return True
    return content_type.split(";", 1)[0].strip().lower() == JSON_TYPE
