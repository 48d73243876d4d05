"""In-memory doubles of the gateway's two seams, as httpx's ``MockTransport`` is for HTTP.

    MemorySessionStore  ``gateway.session.port.SessionStorePort`` with the Redis store's
                        semantics: versions, compare-and-set, the merge base, fenced
                        locks with leases, TTLs on a clock a test may hold
                        (``ManualClock``), and the trouble a test causes (an outage,
                        overload, answers lost) -- ``store``, on ``records``
    MemoryUpstream      ``gateway.upstream.forward.Upstream`` answering from a handler or a
                        script of ``Reply``s, recording what it was sent, failing as
                        the network client fails, streaming answers (``MemoryStream``),
                        cut short if asked -- ``upstream``

Given to ``gateway.runtime.compose.build`` as ``Overrides(store=MemorySessionStore(),
upstreams=lambda id, url, limits: MemoryUpstream(id, url, handler, limits=limits))``,
they leave the request pipeline no network to touch, but for pins: a route that
pins sessions asks Redis through ``flags.pins`` (an unanswered ask counts as "not
pinned"). The Redis client is still made -- the flag provider uses it unless
``Overrides.provider`` brings another -- and connects only when something asks.

tests/integration/test_session_store_contract.py holds ``MemorySessionStore`` and the
Redis store to the same observable behaviour: a change to one that the other does
not follow fails there.
"""

from .records import ManualClock
from .store import Fault, MemorySessionStore
from .upstream import Handler, MemoryStream, MemoryUpstream, Reply

__all__ = ["Fault", "Handler", "ManualClock", "MemorySessionStore", "MemoryStream",
           "MemoryUpstream", "Reply"]
