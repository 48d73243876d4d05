"""The request pipeline: the stages, chained in order.

    screen   smuggling shapes, Host, canonical path, blocked paths     (screen.py)
    route    the configured route, or 404/405                          (route.py)
    screen   the headers a backend sees                                (screen.py)
    session  whose session (cookies); later, the bridge per attempt    (session.py)
    screen   the body                                                  (screen.py)
    decide   which backend, and why                                    (decide.py)
    forward  the attempts, the fallback, one report per attempt        (forward.py)
    respond  the answer for the client, the gateway's cookies          (respond.py)
    observe  counted, timed, one log line                              (observe.py)

Stages know the exchange (``exchange.py``) and nothing of each other; this module
is the only one that knows them all. A refusal raised anywhere still carries the
gateway's cookies (a renewed sync token); the listener turns it into problem+json.
"""

from __future__ import annotations

import time

from gateway.edge.headers import Hygiene
from gateway.edge.http import Incoming, Reply
from gateway.errors import GatewayError
from gateway.observe.metrics import Metrics
from gateway.pipeline.decide import DecideStage
from gateway.pipeline.exchange import Exchange, ShadowSink
from gateway.pipeline.forward import Forward
from gateway.pipeline.observe import Observe
from gateway.pipeline.respond import Respond, cookie_lines
from gateway.pipeline.route import RouteStage
from gateway.pipeline.screen import Screen
from gateway.pipeline.session import SessionStage
from gateway.routing.breaker import Breaker
from gateway.routing.budget import RetryBudget
from gateway.routing.decide import Decider, Decision
from gateway.routing.pinning import PinBook
from gateway.routing.routes import Router
from gateway.session.bridge import SessionBridge
from gateway.settings import GatewaySection
from gateway.upstream.pools import LegacyPool, NewPool


class Pipeline:
    def __init__(self, cfg: GatewaySection, router: Router, decider: Decider,
                 bridge: SessionBridge, legacy: LegacyPool, new: NewPool,
                 breakers: dict[str, Breaker], budgets: dict[str, RetryBudget],
                 shadow: ShadowSink, metrics: Metrics, pins: PinBook | None = None) -> None:
        self.router = router
        self.decider = decider
        self.bridge = bridge
        self.breakers = breakers
        hygiene = Hygiene(bridge.profile.response_headers)
        self.screen = Screen(cfg, router.blocked, hygiene, metrics)
        self.route = RouteStage(router)
        self.session = SessionStage(bridge, metrics)
        self.decide = DecideStage(decider, bridge.store, new, breakers, pins)
        self.forward = Forward(self.session, legacy, new, breakers, budgets, shadow, metrics)
        self.respond = Respond(hygiene, cfg.debug_backend_header)
        self.observe = Observe(metrics)

    async def handle(self, request: Incoming, rid: str) -> Reply:
        started = time.perf_counter()
        self.bridge.begin()
        ex = await self.prepare(request, rid)
        try:
            decision: Decision = await self.decide(ex)
            served = await self.forward(ex, decision)
        except GatewayError as exc:
            exc.cookies = cookie_lines(ex, None)
            raise
        reply = self.respond(ex, served)
        self.bridge.done()
        self.observe(ex, served, reply, time.perf_counter() - started)
        return reply

    async def prepare(self, request: Incoming, rid: str) -> Exchange:
        """The stages before the decision: screened, routed, identified, body in hand."""
        host, target = self.screen(request)
        ex = Exchange(request, rid, target, self.route(target.path, request.method), host)
        ex.headers = self.screen.upstream_headers(request, host, rid)
        self.session.identify(ex)  # after the headers: a refusal's cookies need ex.secure
        ex.body, ex.length = await self.screen.body(request)
        return ex
