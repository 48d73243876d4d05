"""Why would this request go where it goes? The pipeline's own decision, narrated.

Routing is the router's (canonical path, route match); the decision is
``Decider.decide`` -- the very function the pipeline acts on, with the same
flag view, breakers, health and pin book -- asked with ``acting=False``, so
the breaker is only peeked at and nothing is pinned. This module adds words
only: a sentence per step, the canary bucket behind the SDK's answer, and the
ledger entry that set the route's current stage.
"""

from __future__ import annotations

from typing import Any

from UnleashClient.utils import normalized_hash

from flags.features import feature_name, group_id
from flags.ledger import Ledger
from gateway.edge.canonical import canonical
from gateway.errors import GatewayError, NewUnavailable
from gateway.routing.breaker import Breaker
from gateway.routing.decide import Decider
from gateway.routing.pinning import PinBook
from gateway.routing.routes import Match, Route, Router
from gateway.session.port import SessionStorePort
from gateway.upstream.pools import NewPool

UNBUCKETED = "canary_unbucketed"
"""The reason when a canary route is asked about with neither a session nor a cid: the
gateway would give such a client a fresh cid, so its side is not known in advance."""

_SAID = {
    "legacy_only": "legacy-only route (no new implementation)",
    "kill_switch": "kill switch is ON: everything goes to legacy",
    "stage_shadow": "legacy answers; a copy of safe requests goes to new",
    "pinned": "pinned to new: it was served by new before (unpin to release)",
}


class Explainer:
    def __init__(self, router: Router, decider: Decider, breakers: dict[str, Breaker],
                 store: SessionStorePort, new: NewPool, pins: PinBook | None, ledger: Ledger,
                 max_url_bytes: int) -> None:
        """The same objects the pipeline decides with (``gateway.runtime.compose`` wires both)."""
        self._router = router
        self._decider = decider
        self._breakers = breakers
        self._store = store
        self._new = new
        self._pins = pins
        self._ledger = ledger
        self._max_url = max_url_bytes

    async def explain(self, method: str, raw_path: str, session: str | None,
                      cid: str | None = None) -> dict[str, Any]:
        """``session``: a session id; ``cid``: a ``strangler_cid`` (used without a session)."""
        steps: list[str] = []
        out: dict[str, Any] = {"method": method, "path": raw_path, "session": session,
                               "cid": cid, "steps": steps}
        try:
            target = canonical(raw_path, self._max_url)
        except GatewayError as exc:
            steps.append(f"refused before routing: {exc.detail}")
            return {**out, "backend": None, "reason": exc.code}
        if target.path != raw_path.partition("?")[0]:
            steps.append(f"canonical path: {target.path}")
        blocked = self._router.blocked.match(target.path)
        if blocked is not None:
            steps.append(f"blocked path ({blocked}): never forwarded, 404 from the gateway")
            return {**out, "backend": None, "reason": "blocked_path"}
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
        if not route.legacy_only:
            await self._stage(route, out)
        backend, reason = await self._decide(route, session, cid, out)
        return {**out, "backend": backend, "reason": reason}

    async def _stage(self, route: Route, out: dict[str, Any]) -> None:
        flag = self._decider.view.flag(route.name)
        entry = await self._ledger.last_for(route.name)
        out["stage"] = flag.stage.value if flag else "legacy"
        out["percent"] = flag.percent if flag else 0
        out["set_by"] = entry.describe() if entry else "config.yaml (never changed)"

    async def _decide(self, route: Route, sid: str | None, cid: str | None,
                      out: dict[str, Any]) -> tuple[str | None, str]:
        steps: list[str] = out["steps"]
        if sid is None and cid is None and self._decider.needs_key(route):
            steps.append(f"stage canary at {out['percent']}%")
            steps.append("no session and no strangler_cid: the gateway gives such a client a "
                         "new strangler_cid and buckets it by that (new iff its bucket <= "
                         f"{out['percent']}); ask with a cid to see one client's side")
            return None, UNBUCKETED
        try:
            decision = await self._decider.decide(
                route, sid, cid, store_up=self._store.up, new_healthy=bool(self._new.healthy),
                breaker=self._breakers[route.name], pins=self._pins, acting=False)
        except NewUnavailable as exc:
            self._narrate(route, exc.steps[:-1], sid, cid, out)
            steps.append(f"{exc.reason}, and a complete route never falls back: 503")
            return "none (503)", exc.reason
        self._narrate(route, decision.steps, sid, cid, out)
        return decision.backend.value, decision.reason

    def _narrate(self, route: Route, reasons: tuple[str, ...], sid: str | None,
                 cid: str | None, out: dict[str, Any]) -> None:
        steps: list[str] = out["steps"]
        for reason in reasons:
            if reason in ("canary_in", "canary_out"):
                steps.append(f"stage canary at {out['percent']}%")
                steps.append(self._bucket(route, sid, cid, reason == "canary_in", out))
            elif reason.startswith("stage_"):
                steps.append(f"stage {reason.removeprefix('stage_')}")
                if reason in _SAID:
                    steps.append(_SAID[reason])
            elif reason in _SAID:
                steps.append(_SAID[reason])
            else:  # a guard: new cannot serve now
                steps.append(f"{reason}: sent to legacy instead")

    def _bucket(self, route: Route, sid: str | None, cid: str | None, inside: bool,
                out: dict[str, Any]) -> str:
        key, name = (sid, "<sid>") if sid is not None else (cid, "<cid>")
        assert key is not None
        group = group_id(route.name, self._decider.view.state.groups.get(route.name))
        bucket = out["bucket"] = normalized_hash(key, group)
        percent = out["percent"]
        return (f"bucket {bucket} (murmur3 of '{group}:{name}') "
                f"{'<=' if bucket <= percent else '>'} {percent}: the Unleash SDK says "
                f"{'in' if inside else 'out'} ({feature_name(route.name)})")
