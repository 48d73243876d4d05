"""Screen: what is refused or cleaned before a route is chosen.

Smuggling shapes, the Host, the canonical path, paths never forwarded; then,
for a request that has a route, the headers a backend will see (hop-by-hop and
internal ones gone, ``X-Forwarded-*`` and trace context set) and its body (read
whole when small, so a failure can still fall back; streamed and capped when
large; ``100 Continue`` only once it is welcome).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from multidict import CIMultiDict

from gateway.edge.blocked import Blocklist
from gateway.edge.canonical import Target, canonical
from gateway.edge.headers import Hygiene, TrustedProxies, screen
from gateway.edge.hosts import PublicHosts
from gateway.edge.http import Incoming
from gateway.errors import BadRequest, ExpectationFailed, PathBlocked, PayloadTooLarge
from gateway.observe.metrics import Metrics
from gateway.settings import GatewaySection

Body = bytes | AsyncIterator[bytes] | None


class Screen:
    def __init__(self, cfg: GatewaySection, blocked: Blocklist, hygiene: Hygiene,
                 metrics: Metrics) -> None:
        self._limits = cfg.limits
        self._blocked = blocked
        self._hosts = PublicHosts(cfg.public_hosts, cfg.default_host)
        self._trusted = TrustedProxies(cfg.trusted_proxies)
        self._hygiene = hygiene
        self._metrics = metrics

    def __call__(self, request: Incoming) -> tuple[str | None, Target]:
        """The validated Host (None: HTTP/1.0 without one, allowed) and the canonical
        target; raises the refusal."""
        screen(request.headers)
        try:
            host = self._hosts.resolve(request.headers.getall("Host", []),
                                       http10=request.version < (1, 1))
        except BadRequest as exc:
            self._metrics.host_refused.labels("public", exc.code).inc()
            raise
        target = canonical(request.target, self._limits.max_url_bytes)
        pattern = self._blocked.match(target.path)
        if pattern is not None:
            self._metrics.blocked.labels(pattern).inc()
            raise PathBlocked(target.path, pattern)
        return host, target

    def upstream_headers(self, request: Incoming, host: str | None,
                         rid: str) -> CIMultiDict[str]:
        peer = request.peer
        return self._hygiene.to_upstream(
            request.headers, peer=peer, trusted_proxy=peer in self._trusted,
            proto=request.scheme, host=host, rid=rid)

    async def body(self, request: Incoming) -> tuple[Body, int | None]:
        """Small bodies are read whole (resendable on fallback); large ones stream, capped."""
        if not request.body_exists:
            return None, None
        length = request.length
        limit = self._limits.max_body_bytes
        if length is not None and length > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
        await _expect_continue(request)
        if length is not None and length <= self._limits.buffer_body_bytes:
            return await request.read(), length
        return _capped(request.chunks(), limit), length


async def _expect_continue(request: Incoming) -> None:
    """Answer ``Expect: 100-continue`` ourselves, once the body is known to be welcome
    (an oversize one was refused above, so that client never sends it)."""
    expect = request.headers.get("Expect")
    if expect is None:
        return
    if expect.lower() != "100-continue" or request.version != (1, 1):
        raise ExpectationFailed(f"unsupported Expect: {expect[:40]}")
    await request.send_continue()


async def _capped(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """Stream a request body, refusing to pass more than ``limit`` bytes."""
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
        yield chunk
