"""The hop-by-hop headers (RFC 9110 7.6.1) the bench's reference proxies drop.

Its own module so the lean proxy shares the set with the plain proxy without
importing aiohttp: the lean proxy's memory at rest is part of what it measures.
"""

from __future__ import annotations

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"})
