"""Route flags <-> Unleash feature definitions (the client API's JSON shape).

One feature per route, named ``strangler.route.<route>``::

    {"name": "strangler.route.cart", "enabled": <stage != legacy>,
     "strategies": [{"name": "flexibleRollout",
                     "parameters": {"rollout": "<percent>", "stickiness": "sessionId",
                                    "groupId": "strangler.route.cart"},
                     "variants": [{"name": "<stage>", "weight": 1000,
                                   "stickiness": "sessionId",
                                   "payload": {"type": "string", "value": "<stage>"}}]}]}

``groupId`` is the feature name -- or, for routes declared as a group (cart
and checkout, say), ``strangler.group.<group>`` -- so a session's bucket
depends only on the route (group) and the session. Unleash puts a session in
the rollout iff ``murmur3("<groupId>:<sessionId>") % 100 + 1 <= percent``:
raising the percentage only adds sessions to new, lowering it only takes them
back, and the routes of a group always agree.

``parse_definitions`` is the inverse, for a document fetched from an Unleash
server: tolerant of features it does not own, strict about its own -- a route
feature that is not exactly the shape above sends that route to legacy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from flags.model import FlagError, FlagState, RouteFlag, Stage

log = structlog.get_logger("flags")

FEATURE_PREFIX = "strangler.route."
KILL_SWITCH_FEATURE = "strangler.kill-switch"


def feature_name(route: str) -> str:
    return f"{FEATURE_PREFIX}{route}"


def group_id(route: str, group: str | None) -> str:
    """The stickiness ``groupId``: the route group's, else the route's own feature."""
    return f"strangler.group.{group}" if group else feature_name(route)


def route_feature(route: str, flag: RouteFlag, group: str | None = None) -> dict[str, Any]:
    """The feature for ``route``. Routes of one group share a stickiness ``groupId``
    (the group's name), so a session falls on the same side for all of them."""
    name = feature_name(route)
    # shadow is "enabled" with 0% rollout: the stage is visible in the variant,
    # yet no session is ever sent to new by the rollout itself.
    return {
        "name": name,
        "type": "release",
        "enabled": flag.stage is not Stage.LEGACY,
        "strategies": [
            {
                "name": "flexibleRollout",
                "parameters": {
                    "rollout": str(flag.percent),
                    "stickiness": "sessionId",
                    "groupId": group_id(route, group),
                },
                "variants": [
                    {
                        "name": flag.stage.value,
                        "weight": 1000,
                        "stickiness": "sessionId",
                        "payload": {"type": "string", "value": flag.stage.value},
                    }
                ],
            }
        ],
    }


def definitions(state: FlagState) -> dict[str, Any]:
    """The full client-features document for ``state``, as an Unleash server would serve it."""
    features = [route_feature(r, f, state.groups.get(r)) for r, f in sorted(state.routes.items())]
    features.append(
        {
            "name": KILL_SWITCH_FEATURE,
            "type": "kill-switch",
            "enabled": state.kill_switch,
            "strategies": [kill_switch_strategy()],
        }
    )
    return {"version": 2, "features": features}


def kill_switch_strategy() -> dict[str, Any]:
    return {"name": "default", "parameters": {}}


class MalformedFeature(FlagError):
    """A feature we own is not in the shape ``route_feature`` makes."""


def parse_definitions(document: Mapping[str, Any], defaults: Mapping[str, RouteFlag],
                      groups: Mapping[str, str] | None = None) -> FlagState:
    """The ``FlagState`` a client-features document describes, for the routes in ``defaults``.

    A configured route whose feature is absent gets its ``defaults`` entry; one whose
    feature is malformed is legacy (and logged). Features we do not own are ignored;
    so are route features of routes not configured here. The kill switch is on iff its
    feature is enabled; a malformed one counts as on (legacy is the safe side).
    ``version`` is the server's ``meta.revisionId`` when it sends one, else 0.
    """
    groups = dict(groups or {})
    raw = document.get("features") if isinstance(document, Mapping) else None
    if not isinstance(raw, list):
        raise MalformedFeature("not a client-features document (no 'features' list)")
    by_name = {f["name"]: f for f in raw
               if isinstance(f, Mapping) and isinstance(f.get("name"), str)}
    routes: dict[str, RouteFlag] = {}
    for route, default in defaults.items():
        feature = by_name.get(feature_name(route))
        if feature is None:
            routes[route] = default
            continue
        try:
            routes[route] = parse_route_feature(route, feature, groups.get(route))
        except MalformedFeature as exc:
            log.error("flag_feature_malformed", route=route, feature=feature_name(route),
                      reason=str(exc))
            routes[route] = RouteFlag(Stage.LEGACY, updated_by="unleash", reason=str(exc))
    _hold_groups_together(routes, groups)
    kill = False
    kill_feature = by_name.get(KILL_SWITCH_FEATURE)
    if kill_feature is not None:
        enabled = kill_feature.get("enabled")
        if isinstance(enabled, bool):
            kill = enabled
        else:
            log.error("flag_feature_malformed", feature=KILL_SWITCH_FEATURE,
                      reason=f"enabled is {enabled!r}; treated as on")
            kill = True
    meta = document.get("meta")
    revision = meta.get("revisionId") if isinstance(meta, Mapping) else None
    version = revision if isinstance(revision, int) and not isinstance(revision, bool) else 0
    return FlagState(routes, kill, version, groups)


_ORDER = {stage: i for i, stage in enumerate(Stage)}


def _hold_groups_together(routes: dict[str, RouteFlag], groups: Mapping[str, str]) -> None:
    """Every route of a group takes the most-legacy setting among them.

    A group's features are written one after another, so a document fetched in
    between can show it split; holding it at the lower setting means a move up
    happens when the last route has moved, a move down when the first has.
    """
    members: dict[str, list[str]] = {}
    for route, group in groups.items():
        if route in routes:
            members.setdefault(group, []).append(route)
    for group, names in members.items():
        lowest = min((routes[r] for r in names), key=lambda f: (_ORDER[f.stage], f.percent))
        if any(not routes[r].same_setting(lowest) for r in names):
            log.warning("flag_group_split", group=group, held_at=lowest.stage.value,
                        percent=lowest.percent,
                        routes={r: f"{routes[r].stage.value}:{routes[r].percent}"
                                for r in sorted(names)})
            for r in names:
                routes[r] = lowest


def parse_route_feature(route: str, feature: Mapping[str, Any],
                        group: str | None = None) -> RouteFlag:
    """The flag a route feature says; ``MalformedFeature`` unless it is exactly ours."""
    enabled = feature.get("enabled")
    if not isinstance(enabled, bool):
        raise MalformedFeature(f"enabled is {enabled!r}, not a boolean")
    if not enabled:
        return RouteFlag(Stage.LEGACY, updated_by="unleash")
    strategies = feature.get("strategies")
    if not isinstance(strategies, list) or len(strategies) != 1:
        count = len(strategies) if isinstance(strategies, list) else strategies
        raise MalformedFeature(f"needs exactly one strategy, has {count!r}")
    strategy = strategies[0]
    if not isinstance(strategy, Mapping) or strategy.get("name") != "flexibleRollout":
        raise MalformedFeature("the strategy is not flexibleRollout")
    if strategy.get("disabled") or strategy.get("constraints") or strategy.get("segments"):
        raise MalformedFeature("the strategy is disabled or has constraints or segments")
    params = strategy.get("parameters")
    if not isinstance(params, Mapping):
        raise MalformedFeature("the strategy has no parameters")
    want_group = group_id(route, group)
    if params.get("stickiness") != "sessionId" or params.get("groupId") != want_group:
        raise MalformedFeature(f"stickiness must be sessionId and groupId {want_group!r}, got "
                               f"{params.get('stickiness')!r} and {params.get('groupId')!r}")
    rollout = params.get("rollout")
    if not isinstance(rollout, str | int) or isinstance(rollout, bool) \
            or not str(rollout).isdigit() or not 0 <= int(rollout) <= 100:
        raise MalformedFeature(f"rollout {rollout!r} is not a percentage")
    stage = _variant_stage(strategy.get("variants"))
    percent = int(rollout)
    fixed = {Stage.SHADOW: 0, Stage.NEW: 100, Stage.COMPLETE: 100}
    if stage is Stage.LEGACY:
        raise MalformedFeature("enabled, but its variant says legacy")
    if stage in fixed and percent != fixed[stage]:
        raise MalformedFeature(f"{stage.value} with rollout {percent}")
    return RouteFlag(stage, percent, updated_by="unleash")


def _variant_stage(variants: Any) -> Stage:
    if not isinstance(variants, list) or len(variants) != 1 \
            or not isinstance(variants[0], Mapping):
        raise MalformedFeature("needs exactly one strategy variant naming the stage")
    variant = variants[0]
    payload = variant.get("payload")
    value = payload.get("value") if isinstance(payload, Mapping) else None
    if variant.get("name") != value:
        raise MalformedFeature(f"variant {variant.get('name')!r} and its payload {value!r} "
                               "disagree")
    try:
        return Stage(str(value))
    except ValueError:
        raise MalformedFeature(f"variant names no stage: {value!r}") from None
