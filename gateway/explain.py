"""Why would this request go where it goes? The decision, step by step, no side effects.

Mirrors ``Pipeline._decide`` and ``decide.guard`` -- canonical path, route,
kill switch, stage, canary bucket (the Unleash SDK's own answer, and the
murmur3 bucket behind it), pin, then the guards -- but reads the breaker
without claiming its half-open probe, and adds the ledger entry that set
the route's current stage.
"""

from __future__ import annotations

from typing import Any

from UnleashClient.utils import normalized_hash

from flags import Stage
from flags.features import feature_name, group_id
from flags.ledger import Ledger
from flags.pins import Pins
from flags.provider import Provider
from gateway.breaker import Breaker
from gateway.canonical import canonical
from gateway.errors import GatewayError
from gateway.routes import Match, Route, Router
from gateway.session_store import SessionStore
from gateway.upstreams import NewPool


class Explainer:
    def __init__(self, router: Router, provider: Provider, breakers: dict[str, Breaker],
                 store: SessionStore, new: NewPool, pins: Pins, ledger: Ledger,
                 max_url_bytes: int) -> None:
        self._router = router
        self._provider = provider
        self._breakers = breakers
        self._store = store
        self._new = new
        self._pins = pins
        self._ledger = ledger
        self._max_url = max_url_bytes

    async def explain(self, method: str, raw_path: str, session: str | None) -> dict[str, Any]:
        steps: list[str] = []
        out: dict[str, Any] = {"method": method, "path": raw_path, "session": session,
                               "steps": steps}
        try:
            target = canonical(raw_path, self._max_url)
        except GatewayError as exc:
            steps.append(f"refused before routing: {exc.detail}")
            return {**out, "backend": None, "reason": exc.code}
        if target.path != raw_path.partition("?")[0]:
            steps.append(f"canonical path: {target.path}")
        match = self._router.match(target.path, method)
        if match.route is None:
            steps.append("no route matches")
            return {**out, "backend": None, "reason": "no_route"}
        route = match.route
        out["route"] = route.name
        if match.match is Match.PARTIAL:
            steps.append(f"route {route.name} does not allow {method}")
            return {**out, "backend": None, "reason": "method_not_allowed"}
        steps.append(f"route: {route.name}")
        backend, reason = await self._decide(route, session, steps, out)
        return {**out, "backend": backend, "reason": reason}

    async def _decide(self, route: Route, session: str | None, steps: list[str],
                      out: dict[str, Any]) -> tuple[str, str]:
        view = self._provider.view
        if route.legacy_only:
            steps.append("legacy-only route (no new implementation)")
            return "legacy", "legacy_only"
        flag = view.flag(route.name)
        entry = await self._ledger.last_for(route.name)
        out["stage"] = flag.stage.value if flag else "legacy"
        out["percent"] = flag.percent if flag else 0
        out["set_by"] = entry.describe() if entry else "config.yaml (never changed)"
        if view.kill_switch:
            steps.append("kill switch is ON: everything goes to legacy")
            return "legacy", "kill_switch"
        stage = flag.stage if flag else Stage.LEGACY
        steps.append(f"stage {out['stage']}" + (f" at {flag.percent}%" if flag and stage is
                                                 Stage.CANARY else ""))
        if stage is Stage.LEGACY:
            return "legacy", "stage_legacy"
        if stage is Stage.SHADOW:
            steps.append("legacy answers; a copy of safe requests goes to new")
            return "legacy", "stage_shadow"
        backend, reason = "new", f"stage_{stage.value}"
        if stage is Stage.CANARY:
            backend, reason = await self._canary(route, session, flag.percent if flag else 0,
                                                 steps, out)
        if backend == "new":
            return self._guards(route, stage, reason, steps)
        return backend, reason

    async def _canary(self, route: Route, session: str | None, percent: int,
                      steps: list[str], out: dict[str, Any]) -> tuple[str, str]:
        if session is None:
            steps.append("no session given: a request without one is bucketed by its "
                         "strangler_cid cookie")
            return "legacy", "canary_out"
        group = self._provider.view.state.groups.get(route.name)
        bucket = normalized_hash(session, group_id(route.name, group))
        in_sdk = self._provider.view.evaluate_uncached(route.name, session)
        out["bucket"] = bucket
        steps.append(f"bucket {bucket} (murmur3 of '{group_id(route.name, group)}:<sid>') "
                     f"{'<=' if bucket <= percent else '>'} {percent}: the Unleash SDK says "
                     f"{'in' if in_sdk else 'out'} ({feature_name(route.name)})")
        if in_sdk:
            return "new", "canary_in"
        if route.pin and await self._pins.has(route.name, session):
            steps.append("pinned to new: it was served by new before (unpin to release)")
            return "new", "pinned"
        return "legacy", "canary_out"

    def _guards(self, route: Route, stage: Stage, reason: str,
                steps: list[str]) -> tuple[str, str]:
        blocked = None
        if not self._store.up:
            blocked = "session_store_down"
        elif not self._new.healthy:
            blocked = "no_new_instance"
        elif self._breakers[route.name].peek() == "open":
            blocked = "breaker_open"
        if blocked is None:
            return "new", reason
        if stage is Stage.COMPLETE:
            steps.append(f"{blocked}, and a complete route never falls back: 503")
            return "none (503)", blocked
        steps.append(f"{blocked}: sent to legacy instead")
        return "legacy", blocked
