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
"""

from __future__ import annotations

from typing import Any

from flags.model import FlagState, RouteFlag, Stage

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
            "strategies": [{"name": "default", "parameters": {}}],
        }
    )
    return {"version": 2, "features": features}
