"""Route flags read and written through the Unleash Admin API (no SDK client).

The write order never lets a polling client see a half-made change: the
strategy is written while the feature is off, then the feature is enabled;
going back to legacy disables first. Routes of a group are written one after
another (``parse_definitions`` holds a group caught in between together).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import structlog

from flags.features import (
    KILL_SWITCH_FEATURE,
    MalformedFeature,
    feature_name,
    kill_switch_strategy,
    parse_definitions,
    route_feature,
)
from flags.model import FlagState, RouteFlag, Stage, check_flip, moving_together
from flags.store import Change
from flags.unleash_admin import UnleashAdmin

log = structlog.get_logger("flags")


def all_legacy(routes: Mapping[str, RouteFlag] | list[str]) -> dict[str, RouteFlag]:
    return {r: RouteFlag(Stage.LEGACY, updated_by="unleash") for r in routes}



class UnleashFlags:
    """Route flags read and written through the Admin API (no SDK client).

    ``strangler flags`` uses it directly; the provider uses it for flips.
    """

    def __init__(self, admin: UnleashAdmin, routes: Mapping[str, RouteFlag] | list[str],
                 groups: Mapping[str, str] | None = None) -> None:
        self.admin = admin
        self.routes = all_legacy(routes)
        self.groups = dict(groups or {})

    async def load(self) -> FlagState:
        """What the server holds now, read through the Admin API."""
        names = [feature_name(r) for r in self.routes] + [KILL_SWITCH_FEATURE]
        found = await asyncio.gather(*(self.admin.client_feature(n) for n in names))
        doc = {"features": [f for f in found if f is not None]}
        return parse_definitions(doc, self.routes, self.groups)

    async def set_route(self, route: str, stage: Stage, percent: int | None, *, actor: str,
                        reason: str = "") -> Change:
        pct = check_flip(route, stage, percent, self.routes)
        before = (await self.load()).routes[route]
        after = RouteFlag(stage, pct, actor, time.time(), reason)
        moved = moving_together(route, self.groups)
        for r in moved:
            await self._write_route(r, after)
        log.info("flag_written", route=route, moved=list(moved), stage=stage.value,
                 percent=pct, actor=actor, reason=reason, to="unleash")
        return Change(route, before, after, 0, moved)

    async def set_kill(self, on: bool, *, actor: str, reason: str = "") -> Change:
        before = (await self.load()).kill_switch
        await self.admin.create_feature(KILL_SWITCH_FEATURE, "kill-switch",
                                        "Strangler: every route to legacy while enabled")
        feature = await self.admin.feature(KILL_SWITCH_FEATURE)
        if feature is None or not self.admin.env_of(feature).get("strategies"):
            await self.admin.add_strategy(KILL_SWITCH_FEATURE, kill_switch_strategy())
        await self.admin.set_enabled(KILL_SWITCH_FEATURE, on)
        log.warning("kill_switch_written", on=on, actor=actor, reason=reason, to="unleash")
        return Change(None, before, on, 0)

    async def _write_route(self, route: str, flag: RouteFlag) -> None:
        name = feature_name(route)
        await self.admin.create_feature(name, "release", f"Strangler route {route!r}")
        feature = await self.admin.feature(name)
        if feature is None:
            raise MalformedFeature(f"{name} vanished while being written")
        env = self.admin.env_of(feature)
        strategy = route_feature(route, flag, self.groups.get(route))["strategies"][0]
        strategy = {**strategy, "constraints": [],
                    "variants": [{**v, "weightType": "variable"} for v in strategy["variants"]]}
        if flag.stage is Stage.LEGACY:
            await self.admin.set_enabled(name, False)  # off first: clients see legacy at once
        existing = [s for s in env.get("strategies", []) if s.get("id")]
        for extra in existing[1:]:
            await self.admin.delete_strategy(name, extra["id"])
        if existing:
            await self.admin.replace_strategy(name, existing[0]["id"], strategy)
        else:
            await self.admin.add_strategy(name, strategy)
        if flag.stage is not Stage.LEGACY and not env.get("enabled"):
            await self.admin.set_enabled(name, True)  # on last: the strategy is already right
