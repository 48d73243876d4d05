"""Header hygiene in both directions.

Toward a backend: hop-by-hop headers go (RFC 9110 7.6.1), including any a
client names in ``Connection``; every internal header goes. Whatever is dropped
is dropped under any underscore alias too (``X_Strangler_Identity``,
``X-Strangler_Identity``, ``X_Forwarded_For``, ``Transfer_Encoding``): WSGI and CGI
servers fold ``-`` and ``_`` into one environ key, so an alias that passed would
forge the real header behind the gateway. ``X-Forwarded-*`` are set from what
the gateway saw, not what the client claimed; forwarding headers it does not
set (``X-Forwarded-Port``, ``X-Forwarded-Ssl``, ``X-Original-URL``...) are
dropped, since backends honour them to decide scheme or path. Toward the
client: hop-by-hop and internal headers go; the gateway's own
(``X-Request-Id``, affinity cookie) are added after the filter, so they survive
it.
"""

from __future__ import annotations

import ipaddress
import random
import re

from multidict import CIMultiDict, CIMultiDictProxy

from adapters.wire import INTERNAL_HEADERS
from gateway.errors import BadHeader
from gateway.observe import tracing

HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    }
)
_DROP_REQUEST = HOP_BY_HOP | INTERNAL_HEADERS | {
    "host", "content-length", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
    "x-real-ip", "forwarded", "x-request-id",
    "traceparent",  # the gateway's own span becomes the parent (gateway.observe.tracing)
    "expect",  # answered by the gateway itself (100-continue), never passed on
    # Also claims about the client or the path that only a proxy may make: backends
    # (Rails, Werkzeug's ProxyFix, Symfony, IIS) believe them.
    "x-forwarded-port", "x-forwarded-ssl", "x-forwarded-scheme", "x-forwarded-prefix",
    "x-forwarded-server", "x-forwarded-protocol", "x-client-ip", "x-cluster-client-ip",
    "true-client-ip", "front-end-https", "x-url-scheme", "x-original-url", "x-rewrite-url",
}
_DROP_RESPONSE = HOP_BY_HOP | INTERNAL_HEADERS | {"content-length"}
_PROTOS = frozenset({"http", "https"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def request_id(incoming: str | None) -> str:
    """Keep a sane client-supplied id (for end-to-end tracing), else make one. An id
    names a request, it guards nothing: the process's PRNG (reseeded in every forked
    worker) makes it in a fraction of a ``getrandom`` system call's time."""
    if incoming and _REQUEST_ID.fullmatch(incoming):
        return incoming
    return f"{random.getrandbits(64):016x}"


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
    # Exactly "chunked": the names are case-insensitive on paper, but "Chunked" or
    # "identity, chunked" is what a desync probe sends (no real client does), and a
    # hop that reads it differently frames the body differently (TE.TE smuggling).
    if te and (len(te) > 1 or te[0].strip() != "chunked"):
        raise BadHeader("unsupported Transfer-Encoding")


def _dropping(drop: frozenset[str], headers: CIMultiDictProxy[str]) -> frozenset[str]:
    """``drop`` and what ``Connection`` names; remembered, since a backend (or a client
    library) says the same few things every time."""
    values = headers.getall("Connection", ())
    key = (drop, values[0] if len(values) == 1 else ",".join(values))
    both = _DROPPING.get(key)
    if both is None:
        both = drop | frozenset(t.strip().lower() for t in key[1].split(",") if t.strip())
        if len(_DROPPING) < 256:
            _DROPPING[key] = both
    return both


_DROPPING: dict[tuple[frozenset[str], str], frozenset[str]] = {}


def internal_names(monolith: tuple[str, ...] | frozenset[str] = ()) -> frozenset[str]:
    """Lower-cased names private to Strangler and the systems behind it: its own, and
    the monolith's session headers the profile names."""
    return INTERNAL_HEADERS | {n.lower() for n in monolith}


class Hygiene:
    """What is dropped in each direction, computed once: Strangler's internal headers
    plus the monolith's own session headers (``X-Shop-Session-Id`` in the demo)."""

    def __init__(self, monolith: tuple[str, ...] | frozenset[str] = ()) -> None:
        extra = internal_names(monolith)
        self.internal = extra
        self.drop_request = _DROP_REQUEST | extra
        self.drop_response = _DROP_RESPONSE | extra

    def to_upstream(self, headers: CIMultiDictProxy[str], *, peer: str, trusted_proxy: bool,
                    proto: str, host: str | None, rid: str) -> CIMultiDict[str]:
        return upstream_request_headers(headers, peer=peer, trusted_proxy=trusted_proxy,
                                        proto=proto, host=host, rid=rid,
                                        drop=self.drop_request)

    def to_client(self, headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
        return _filtered(headers, self.drop_response)


def upstream_request_headers(
    headers: CIMultiDictProxy[str],
    *,
    peer: str,
    trusted_proxy: bool,
    proto: str,
    host: str | None,
    rid: str,
    drop: frozenset[str] = _DROP_REQUEST,
) -> CIMultiDict[str]:
    """Headers to send to a backend for this client request. ``host`` is the validated
    Host (``gateway.edge.hosts``), never the client's raw value; None sends none."""
    out = _filtered(headers, drop)
    prior = ", ".join(headers.getall("X-Forwarded-For", ())) if trusted_proxy else None
    out["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    out["X-Forwarded-Proto"] = _proto(headers, proto) if trusted_proxy else proto
    if host:
        out["X-Forwarded-Host"] = host
    out["X-Request-Id"] = rid
    traceparent, keep_state = tracing.child(headers.getall("traceparent", []))
    out["traceparent"] = traceparent
    if not keep_state:
        out.popall("tracestate", None)
    return out


def _proto(headers: CIMultiDictProxy[str], fallback: str) -> str:
    """A trusted proxy's scheme, as one token the backends and the gateway agree on:
    the first hop's (``https, http`` -> ``https``), lower-cased; else the connection's."""
    value = headers.get("X-Forwarded-Proto", "").split(",", 1)[0].strip().lower()
    return value if value in _PROTOS else fallback


def client_response_headers(headers: CIMultiDictProxy[str],
                            drop: frozenset[str] = _DROP_RESPONSE) -> CIMultiDict[str]:
    """Headers of a backend response that may reach the client."""
    return _filtered(headers, drop)


def _filtered(headers: CIMultiDictProxy[str], drop: frozenset[str]) -> CIMultiDict[str]:
    """``headers`` minus ``drop`` and whatever ``Connection`` names, each in any
    ``-``/``_`` spelling (the gateway sets its own X-* after this)."""
    if "Connection" in headers:
        drop = _dropping(drop, headers)
    return CIMultiDict([(name, value) for name, value in headers.items()
                        if (low := name.lower()) not in drop
                        and not ("_" in low and low.replace("_", "-") in drop)])


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
