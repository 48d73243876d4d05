"""Header hygiene in both directions.

Toward a backend: hop-by-hop headers go (RFC 9110 7.6.1), including any a
client names in ``Connection``; every internal header goes, also under an
underscore alias (``X_Shop_Session_Id``, ``X-Shop_Session-Id``: some servers fold ``_`` into ``-``);
``X-Forwarded-*`` are set from what the gateway saw, not what the client
claimed. Toward the client: hop-by-hop and internal headers go; the gateway's
own (``X-Request-Id``, affinity cookie) are added after the filter, so they
survive it.
"""

from __future__ import annotations

import ipaddress
import re
import secrets

from multidict import CIMultiDict, CIMultiDictProxy

from adapters.wire import INTERNAL_HEADERS
from gateway.errors import BadHeader

HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    }
)
_DROP_REQUEST = HOP_BY_HOP | INTERNAL_HEADERS | {
    "host", "content-length", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
    "x-real-ip", "forwarded", "x-request-id",
}
_DROP_RESPONSE = HOP_BY_HOP | INTERNAL_HEADERS | {"content-length"}
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def request_id(incoming: str | None) -> str:
    """Keep a sane client-supplied id (for end-to-end tracing), else make one."""
    if incoming and _REQUEST_ID.fullmatch(incoming):
        return incoming
    return secrets.token_hex(8)


def screen(headers: CIMultiDictProxy[str]) -> None:
    """Refuse request-smuggling shapes before anything is forwarded."""
    cls = headers.getall("Content-Length", ())
    if len(cls) > 1:
        raise BadHeader("more than one Content-Length")
    if cls and "Transfer-Encoding" in headers:
        raise BadHeader("both Content-Length and Transfer-Encoding")
    if cls and not (cls[0].isascii() and cls[0].isdigit()):
        raise BadHeader("Content-Length is not a number")
    te = headers.getall("Transfer-Encoding", ())
    if te and (len(te) > 1 or te[0].strip().lower() != "chunked"):
        raise BadHeader("unsupported Transfer-Encoding")


def _connection_named(headers: CIMultiDictProxy[str]) -> frozenset[str]:
    named: set[str] = set()
    for value in headers.getall("Connection", ()):
        named.update(t.strip().lower() for t in value.split(",") if t.strip())
    return frozenset(named)


def upstream_request_headers(
    headers: CIMultiDictProxy[str],
    *,
    peer: str,
    trusted_proxy: bool,
    proto: str,
    host: str,
    rid: str,
) -> CIMultiDict[str]:
    """Headers to send to a backend for this client request."""
    out = _filtered(headers, _DROP_REQUEST)
    prior = ", ".join(headers.getall("X-Forwarded-For", ())) if trusted_proxy else None
    out["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    out["X-Forwarded-Proto"] = (headers.get("X-Forwarded-Proto", proto) if trusted_proxy
                                else proto)
    out["X-Forwarded-Host"] = host
    out["X-Request-Id"] = rid
    return out


def client_response_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """Headers of a backend response that may reach the client."""
    return _filtered(headers, _DROP_RESPONSE)


def _filtered(headers: CIMultiDictProxy[str], drop: frozenset[str]) -> CIMultiDict[str]:
    """``headers`` minus ``drop``, internal names in any ``-``/``_`` spelling, and
    whatever ``Connection`` names (the gateway sets its own X-* after this)."""
    if "Connection" in headers:
        drop = drop | _connection_named(headers)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        low = name.lower()
        if low in drop or ("_" in low and low.replace("_", "-") in INTERNAL_HEADERS):
            continue
        out.add(name, value)
    return out


class TrustedProxies:
    """Peers whose ``X-Forwarded-*`` headers are believed (a load balancer in front)."""

    def __init__(self, cidrs: tuple[str, ...]) -> None:
        self._nets = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        self._cache: dict[str, bool] = {}

    def __contains__(self, peer: str) -> bool:
        if not self._nets:
            return False
        hit = self._cache.get(peer)
        if hit is None:
            try:
                addr = ipaddress.ip_address(peer)
                hit = any(addr in net for net in self._nets)
            except ValueError:
                hit = False
            if len(self._cache) < 10_000:
                self._cache[peer] = hit
        return hit
