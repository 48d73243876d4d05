"""Which backend serves a request, and why: the one answer.

``Decider.decide`` is the only place a backend is chosen. The pipeline asks it
for every request and acts on the answer; ``explain`` asks it for an operator
and only narrates the answer, so the two cannot disagree.

Per-route plans are computed when the flags change, not per request: for
every stage but canary the answer is a constant ``Decision`` object. A
canary asks the flag view whether this request's stickiness key (its session
id, else its ``strangler_cid``) is in the rollout (an SDK evaluation,
memoised per key); a pinned session stays on new. Then the guards, in order:
the new side must be reachable (session store up, an instance healthy,
breaker closed); otherwise legacy -- or, on a ``complete`` route, a 503.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from flags import FlagView, Stage
from gateway.errors import NewUnavailable
from gateway.routing.breaker import Breaker
from gateway.routing.pinning import PinBook
from gateway.routing.routes import Route


class Backend(StrEnum):
    LEGACY = "legacy"
    NEW = "new"


_LEGACY, _NEW = Backend.LEGACY, Backend.NEW
"""Module constants for the hot path: an enum member lookup costs ~60 ns on 3.11."""


@dataclass(frozen=True, slots=True)
class Decision:
    backend: Backend
    reason: str
    shadow: bool = False
    fallback: bool = True
    """False on a ``complete`` route: legacy no longer serves it."""
    replaced: Decision | None = None
    """The decision this one overrode (``pinned`` over ``canary_out``, a guard's
    ``breaker_open`` over ``canary_in``); none for the flags' own answer."""

    @property
    def steps(self) -> tuple[str, ...]:
        """The reasons that led here, the flags' answer first (for explain, not the hot path)."""
        chain: list[str] = []
        decision: Decision | None = self
        while decision is not None:
            chain.append(decision.reason)
            decision = decision.replaced
        return tuple(reversed(chain))


@dataclass(frozen=True, slots=True)
class _Plan:
    fixed: Decision | None
    canary_in: Decision | None = None
    canary_out: Decision | None = None
    pinned: Decision | None = None


def _plan(route: Route, view: FlagView) -> _Plan:
    if route.legacy_only:
        return _Plan(Decision(Backend.LEGACY, "legacy_only"))
    if view.kill_switch:
        return _Plan(Decision(Backend.LEGACY, "kill_switch"))
    flag = view.flag(route.name)
    stage = flag.stage if flag else Stage.LEGACY
    if stage is Stage.LEGACY:
        return _Plan(Decision(Backend.LEGACY, "stage_legacy"))
    if stage is Stage.SHADOW:
        return _Plan(Decision(Backend.LEGACY, "stage_shadow", shadow=True))
    if stage is Stage.NEW:
        return _Plan(Decision(Backend.NEW, "stage_new"))
    if stage is Stage.COMPLETE:
        return _Plan(Decision(Backend.NEW, "stage_complete", fallback=False))
    out = Decision(Backend.LEGACY, "canary_out")
    return _Plan(None, Decision(Backend.NEW, "canary_in"), out,
                 Decision(Backend.NEW, "pinned", replaced=out))


class Decider:
    def __init__(self, routes: dict[str, Route], view: FlagView,
                 on_evaluation: Callable[[str, bool], None] | None = None) -> None:
        """``on_evaluation(route, in_canary)``: each SDK evaluation (a memo miss)."""
        self._routes = routes
        self._on_evaluation = on_evaluation
        self.update(view)

    def update(self, view: FlagView) -> None:
        """Recompute every plan for a new flag view (on a flip, never per request)."""
        if self._on_evaluation is not None:
            view.on_evaluation = self._on_evaluation
        self._plans = {name: _plan(r, view) for name, r in self._routes.items()}
        self.view = view

    def needs_key(self, route: Route) -> bool:
        """Whether the answer depends on the stickiness key (a canary)."""
        return self._plans[route.name].fixed is None

    async def decide(self, route: Route, sid: str | None, cid: str | None, *,
                     store_up: bool, new_healthy: bool, breaker: Breaker,
                     pins: PinBook | None, acting: bool) -> Decision:
        """The backend for a request to ``route``, and why.

        ``sid``: the session id, if any; ``cid``: the ``strangler_cid`` cookie. A canary
        buckets by the session id, else by the cid (neither: ``canary_out``; the
        pipeline gives such a client a cid first). Only a session can be pinned.

        ``acting``: True for the pipeline, which acts on the answer -- it claims the
        breaker's half-open probe and pins a session it sends to new. False for
        explain, which must change nothing: the breaker is only peeked at.
        Raises ``NewUnavailable`` on a ``complete`` route new cannot serve.
        """
        plan = self._plans[route.name]
        decision = plan.fixed
        if decision is None:
            decision = self.flag_decision(route, sid if sid is not None else cid)
            if (decision is plan.canary_out and route.pin and sid is not None
                    and pins is not None and await pins.pinned(route.name, sid)):
                assert plan.pinned is not None
                decision = plan.pinned
        if decision.backend is _LEGACY:
            return decision
        decision = guard(decision, store_up=store_up, breaker=breaker, new_healthy=new_healthy,
                         claim_probe=acting)
        if (acting and route.pin and sid is not None and pins is not None
                and decision.backend is _NEW):
            pins.note(route.name, sid)
        return decision

    def flag_decision(self, route: Route, key: str | None) -> Decision:
        """What the flags alone say (no pins, no guards): a step of ``decide``."""
        plan = self._plans[route.name]
        if plan.fixed is not None:
            return plan.fixed
        assert plan.canary_in is not None and plan.canary_out is not None
        if key is not None and self.view.in_canary(route.name, key):
            return plan.canary_in
        return plan.canary_out


def guard(decision: Decision, *, store_up: bool, breaker: Breaker, new_healthy: bool,
          claim_probe: bool = True) -> Decision:
    """Apply the availability guards to a NEW decision (``complete`` fails closed).

    ``claim_probe``: let ``breaker.allow()`` take the half-open probe (the pipeline);
    False reads the breaker with ``peek()`` and leaves it as it is (explain).
    """
    if decision.backend is _LEGACY:
        return decision
    if not store_up:
        reason = "session_store_down"
    elif not new_healthy:
        reason = "no_new_instance"
    elif not (breaker.allow() if claim_probe else breaker.peek() != "open"):
        reason = "breaker_open"
    else:
        return decision
    if not decision.fallback:
        raise NewUnavailable(reason, (*decision.steps, reason))
    return Decision(Backend.LEGACY, reason, replaced=decision)
