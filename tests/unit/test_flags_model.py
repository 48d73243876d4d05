"""flags.model and flags.features: route flags and their Unleash feature definitions."""

from __future__ import annotations

from typing import Any

import pytest

from flags.features import KILL_SWITCH_FEATURE, definitions, feature_name, route_feature
from flags.model import FlagError, FlagState, RouteFlag, Stage, parse_stage

# ---------------------------------------------------------------- RouteFlag


@pytest.mark.parametrize(
    ("stage", "given", "percent"),
    [
        (Stage.LEGACY, 40, 0),
        (Stage.SHADOW, 100, 0),
        (Stage.NEW, 0, 100),
        (Stage.NEW, 30, 100),
        (Stage.COMPLETE, 5, 100),
        (Stage.CANARY, 0, 0),
        (Stage.CANARY, 30, 30),
        (Stage.CANARY, 100, 100),
    ],
)
def test_percent_is_derived_for_fixed_stages(stage: Stage, given: int, percent: int) -> None:
    assert RouteFlag(stage, given).percent == percent


@pytest.mark.parametrize("bad", [-1, 101, 1000, True, False, 30.0, "30", None])
def test_percent_must_be_an_int_within_0_100(bad: Any) -> None:
    with pytest.raises(FlagError):
        RouteFlag(Stage.CANARY, bad)


def test_serves_new() -> None:
    assert {s for s in Stage if s.serves_new} == {Stage.CANARY, Stage.NEW, Stage.COMPLETE}


def test_dict_round_trip() -> None:
    flag = RouteFlag(Stage.CANARY, 25, "alice", 1_700_000_000.5, "ramp up")
    assert RouteFlag.from_dict(flag.to_dict()) == flag


@pytest.mark.parametrize("raw", [{}, {"stage": "beta"}, {"stage": None}])
def test_from_dict_refuses_a_bad_stage(raw: dict[str, Any]) -> None:
    with pytest.raises(FlagError):
        RouteFlag.from_dict(raw)


def test_from_dict_refuses_a_bad_percent() -> None:
    with pytest.raises(FlagError):
        RouteFlag.from_dict({"stage": "canary", "percent": 250})


def test_same_setting_ignores_who_and_when() -> None:
    a = RouteFlag(Stage.CANARY, 10, "alice", 1.0, "x")
    assert a.same_setting(RouteFlag(Stage.CANARY, 10, "bob", 2.0, "y"))
    assert not a.same_setting(RouteFlag(Stage.CANARY, 11))
    assert RouteFlag(Stage.NEW, 0).same_setting(RouteFlag(Stage.NEW, 100))


def test_parse_stage() -> None:
    assert parse_stage("canary") is Stage.CANARY
    with pytest.raises(FlagError, match="legacy, shadow, canary, new, complete"):
        parse_stage("beta")


# ---------------------------------------------------------------- FlagState


def test_flag_state_is_immutable() -> None:
    routes = {"cart": RouteFlag(Stage.NEW)}
    state = FlagState(routes, False, 3)
    routes["orders"] = RouteFlag(Stage.NEW)  # the caller's dict is not shared
    assert set(state.routes) == {"cart"}
    with pytest.raises(TypeError):
        state.routes["x"] = RouteFlag(Stage.NEW)  # type: ignore[index]
    changed = state.with_route("cart", RouteFlag(Stage.LEGACY))
    assert state.routes["cart"].stage is Stage.NEW
    assert changed.routes["cart"].stage is Stage.LEGACY
    assert changed.version == 3 and changed.kill_switch is False


# ---------------------------------------------------------------- features

STATE = FlagState(
    {
        "orders": RouteFlag(Stage.LEGACY),
        "cart": RouteFlag(Stage.CANARY, 30),
        "catalog": RouteFlag(Stage.NEW),
        "auth": RouteFlag(Stage.SHADOW),
        "checkout": RouteFlag(Stage.COMPLETE),
    },
    True,
    12,
)


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in doc["features"]}


def test_one_feature_per_route_plus_the_kill_switch() -> None:
    doc = definitions(STATE)
    assert doc["version"] == 2
    assert sorted(by_name(doc)) == sorted(
        [f"strangler.route.{r}" for r in STATE.routes] + [KILL_SWITCH_FEATURE])
    assert len(doc["features"]) == len(STATE.routes) + 1


@pytest.mark.parametrize("route", sorted(STATE.routes))
def test_route_feature_is_a_sticky_flexible_rollout_carrying_the_stage(route: str) -> None:
    flag = STATE.routes[route]
    feature = by_name(definitions(STATE))[f"strangler.route.{route}"]
    assert feature == route_feature(route, flag)
    assert feature["enabled"] is (flag.stage is not Stage.LEGACY)
    [strategy] = feature["strategies"]
    assert strategy["name"] == "flexibleRollout"
    assert strategy["parameters"] == {"rollout": str(flag.percent), "stickiness": "sessionId",
                                      "groupId": f"strangler.route.{route}"}
    [variant] = strategy["variants"]
    assert variant["stickiness"] == "sessionId"
    assert variant["name"] == flag.stage.value
    assert variant["payload"] == {"type": "string", "value": flag.stage.value}


def test_rollout_follows_the_stage() -> None:
    features = by_name(definitions(STATE))
    rollout = {n.removeprefix("strangler.route."): f["strategies"][0]["parameters"]["rollout"]
               for n, f in features.items() if n != KILL_SWITCH_FEATURE}
    assert rollout == {"orders": "0", "cart": "30", "catalog": "100", "auth": "0",
                       "checkout": "100"}


@pytest.mark.parametrize("kill", [True, False])
def test_kill_switch_feature(kill: bool) -> None:
    doc = definitions(FlagState(STATE.routes, kill, 1))
    feature = by_name(doc)[KILL_SWITCH_FEATURE]
    assert feature["enabled"] is kill
    assert feature["strategies"] == [{"name": "default", "parameters": {}}]


def test_feature_name() -> None:
    assert feature_name("cart") == "strangler.route.cart"


def test_definitions_of_no_routes_still_carry_the_kill_switch() -> None:
    assert [f["name"] for f in definitions(FlagState())["features"]] == [KILL_SWITCH_FEATURE]
