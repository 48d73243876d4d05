"""Which backend serves a request, and why.

Per-route plans are computed when the flags change, not per request: for
every stage but canary the answer is a constant ``Decision`` object. A
canary asks the flag view whether this session is in the rollout (an SDK
evaluation, memoised per session). Then the guards, in order: the new side
must be reachable (session store up, breaker closed, an instance healthy);
otherwise legacy -- or, on a ``complete`` route, a 503.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from flags import FlagView, Stage
from gateway.breaker import Breaker
from gateway.errors import ServiceUnavailable
from gateway.routes import Route


class Backend(StrEnum):
    LEGACY = "legacy"
    NEW = "new"


@dataclass(frozen=True, slots=True)
class Decision:
    backend: Backend
    reason: str
    shadow: bool = False
    fallback: bool = True
    """False on a ``complete`` route: legacy no longer serves it."""


@dataclass(frozen=True, slots=True)
class _Plan:
    fixed: Decision | None
    canary_in: Decision | None = None
    canary_out: Decision | None = None


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
    return _Plan(None, Decision(Backend.NEW, "canary_in"), Decision(Backend.LEGACY, "canary_out"))


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
        return self._plans[route.name].fixed is None

    def flag_decision(self, route: Route, key: str | None) -> Decision:
        plan = self._plans[route.name]
        if plan.fixed is not None:
            return plan.fixed
        assert plan.canary_in is not None and plan.canary_out is not None
        if key is not None and self.view.in_canary(route.name, key):
            return plan.canary_in
        return plan.canary_out


def guard(decision: Decision, *, store_up: bool, breaker: Breaker, new_healthy: bool) -> Decision:
    """Apply the availability guards to a NEW decision (``complete`` fails closed)."""
    if decision.backend is Backend.LEGACY:
        return decision
    if not store_up:
        reason = "session_store_down"
    elif not new_healthy:
        reason = "no_new_instance"
    elif not breaker.allow():
        reason = "breaker_open"
    else:
        return decision
    if not decision.fallback:
        raise ServiceUnavailable(f"route is complete and new is unavailable ({reason})")
    return Decision(Backend.LEGACY, reason)
