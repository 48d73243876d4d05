"""Decide: which backend, by the one decision (``gateway.routing.decide``).

A plain function handing back the decider's coroutine: no extra await per
request. A canary buckets a request without a session by its ``strangler_cid``;
a client without one gets one here (set on the answer).
"""

from __future__ import annotations

import secrets
from collections.abc import Coroutine
from typing import Any

from gateway.pipeline.exchange import Exchange
from gateway.routing.breaker import Breaker
from gateway.routing.decide import Decider, Decision
from gateway.routing.pinning import PinBook
from gateway.session.port import SessionStorePort
from gateway.upstream.pools import NewPool


class DecideStage:
    def __init__(self, decider: Decider, store: SessionStorePort, new: NewPool,
                 breakers: dict[str, Breaker], pins: PinBook | None) -> None:
        self._decider = decider
        self._store = store
        self._new = new
        self._breakers = breakers
        self._pins = pins

    def __call__(self, ex: Exchange) -> Coroutine[Any, Any, Decision]:
        route = ex.route
        cid = ex.client_id
        if ex.sid is None and cid is None and self._decider.needs_key(route):
            cid = ex.new_cid = secrets.token_urlsafe(16)
        return self._decider.decide(route, ex.sid, cid, store_up=self._store.up,
                                    new_healthy=bool(self._new.healthy),
                                    breaker=self._breakers[route.name], pins=self._pins,
                                    acting=True)
