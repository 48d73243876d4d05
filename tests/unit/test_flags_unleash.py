"""flags.features.parse_definitions (the inverse of definitions) and the SDK snapshot cache."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from UnleashClient.constants import ETAG, FEATURES_URL

from flags import FlagState, RouteFlag, Stage
from flags.features import (
    KILL_SWITCH_FEATURE,
    MalformedFeature,
    definitions,
    feature_name,
    parse_definitions,
)
from flags.unleash_server import api_url
from flags.unleash_snapshot import SnapshotCache
from gateway.settings import ConfigError, parse
from tests.support.profiles import shop_session

ROUTES = ("catalog", "auth", "cart", "checkout", "orders")
LEGACY = {r: RouteFlag(Stage.LEGACY) for r in ROUTES}
GROUPS = {"cart": "basket", "checkout": "basket"}


def _settings(state: FlagState) -> dict[str, tuple[Stage, int]]:
    return {r: (f.stage, f.percent) for r, f in state.routes.items()}


@pytest.mark.parametrize("routes", [
    {"catalog": RouteFlag(Stage.LEGACY), "auth": RouteFlag(Stage.SHADOW),
     "cart": RouteFlag(Stage.CANARY, 35), "checkout": RouteFlag(Stage.CANARY, 35),
     "orders": RouteFlag(Stage.NEW)},
    {"catalog": RouteFlag(Stage.COMPLETE), "auth": RouteFlag(Stage.CANARY, 0),
     "cart": RouteFlag(Stage.CANARY, 100), "checkout": RouteFlag(Stage.CANARY, 100),
     "orders": RouteFlag(Stage.CANARY, 1)},
    dict(LEGACY),
])
@pytest.mark.parametrize("kill", [False, True])
def test_round_trip(routes: dict[str, RouteFlag], kill: bool) -> None:
    state = FlagState(routes, kill, 7, GROUPS)
    back = parse_definitions(definitions(state), LEGACY, GROUPS)
    assert _settings(back) == _settings(state)
    assert back.kill_switch is kill
    assert dict(back.groups) == GROUPS
    # and back again: the same document
    assert definitions(back) == definitions(state)


def test_a_served_document_carries_the_servers_revision() -> None:
    doc = definitions(FlagState({"cart": RouteFlag(Stage.NEW)}))
    doc["meta"] = {"revisionId": 42, "etag": '"x:42:v1"'}
    assert parse_definitions(doc, LEGACY).version == 42


def test_foreign_features_and_unconfigured_routes_are_ignored() -> None:
    doc = definitions(FlagState({"cart": RouteFlag(Stage.NEW),
                                 "gone": RouteFlag(Stage.NEW)}))
    doc["features"] += [
        {"name": "someone.elses.flag", "enabled": "weird", "strategies": "whatever"},
        {"name": "strangler.route", "enabled": True},
        "not even a mapping",
        {"no": "name"},
    ]
    state = parse_definitions(doc, {"cart": RouteFlag(Stage.LEGACY)})
    assert _settings(state) == {"cart": (Stage.NEW, 100)}


def test_a_route_without_a_feature_gets_its_default() -> None:
    doc = definitions(FlagState({"cart": RouteFlag(Stage.NEW)}))
    state = parse_definitions(doc, {"cart": RouteFlag(Stage.LEGACY),
                                    "orders": RouteFlag(Stage.LEGACY)})
    assert _settings(state) == {"cart": (Stage.NEW, 100), "orders": (Stage.LEGACY, 0)}
    assert not state.kill_switch


def _canary_cart() -> dict[str, Any]:
    feature = definitions(FlagState({"cart": RouteFlag(Stage.CANARY, 20)}))["features"][0]
    assert feature["name"] == feature_name("cart")
    return dict(feature)


def _broken(change: str) -> dict[str, Any]:
    f = copy.deepcopy(_canary_cart())
    s = f["strategies"][0]
    v = s["variants"][0]
    match change:
        case "enabled_not_bool":
            f["enabled"] = "true"
        case "no_strategies":
            f["strategies"] = []
        case "two_strategies":
            f["strategies"].append(copy.deepcopy(s))
        case "default_strategy":
            f["strategies"] = [{"name": "default", "parameters": {}}]
        case "constraints":
            s["constraints"] = [{"contextName": "userId", "operator": "IN", "values": ["1"]}]
        case "strategy_disabled":
            s["disabled"] = True
        case "stickiness_user":
            s["parameters"]["stickiness"] = "userId"
        case "other_group":
            s["parameters"]["groupId"] = "strangler.route.orders"
        case "rollout_text":
            s["parameters"]["rollout"] = "lots"
        case "rollout_over":
            s["parameters"]["rollout"] = "101"
        case "no_variant":
            s["variants"] = []
        case "two_variants":
            s["variants"].append(copy.deepcopy(v))
        case "unknown_stage":
            v["name"] = v["payload"]["value"] = "sideways"
        case "payload_disagrees":
            v["payload"]["value"] = "new"
        case "legacy_yet_enabled":
            v["name"] = v["payload"]["value"] = "legacy"
        case "shadow_with_rollout":
            v["name"] = v["payload"]["value"] = "shadow"
        case "new_below_100":
            v["name"] = v["payload"]["value"] = "new"
        case _:
            raise AssertionError(change)
    return f


@pytest.mark.parametrize("change", [
    "enabled_not_bool", "no_strategies", "two_strategies", "default_strategy", "constraints",
    "strategy_disabled", "stickiness_user", "other_group", "rollout_text", "rollout_over",
    "no_variant", "two_variants", "unknown_stage", "payload_disagrees", "legacy_yet_enabled",
    "shadow_with_rollout", "new_below_100",
])
def test_a_malformed_route_feature_sends_that_route_to_legacy(change: str) -> None:
    orders = definitions(FlagState({"orders": RouteFlag(Stage.NEW)}))["features"][0]
    doc = {"features": [_broken(change), orders]}
    state = parse_definitions(doc, {"cart": RouteFlag(Stage.NEW),
                                    "orders": RouteFlag(Stage.LEGACY)})
    assert state.routes["cart"].stage is Stage.LEGACY
    assert state.routes["cart"].reason, "the reason is kept"
    assert state.routes["orders"].stage is Stage.NEW, "other routes are unaffected"


def test_a_disabled_feature_is_legacy_whatever_its_strategy_says() -> None:
    f = _canary_cart()
    f["enabled"] = False
    state = parse_definitions({"features": [f]}, {"cart": RouteFlag(Stage.NEW)})
    assert state.routes["cart"] == RouteFlag(Stage.LEGACY, updated_by="unleash")


def test_a_group_caught_half_written_is_held_at_its_most_legacy_member() -> None:
    up = FlagState({"cart": RouteFlag(Stage.CANARY, 50), "checkout": RouteFlag(Stage.CANARY, 10)},
                   groups=GROUPS)
    state = parse_definitions(definitions(up), LEGACY, GROUPS)
    assert _settings(state)["cart"] == _settings(state)["checkout"] == (Stage.CANARY, 10)
    down = FlagState({"cart": RouteFlag(Stage.LEGACY), "checkout": RouteFlag(Stage.NEW)},
                     groups=GROUPS)
    state = parse_definitions(definitions(down), LEGACY, GROUPS)
    assert _settings(state)["checkout"] == (Stage.LEGACY, 0)


def test_the_kill_switch() -> None:
    doc = definitions(FlagState({"cart": RouteFlag(Stage.NEW)}, kill_switch=True))
    assert parse_definitions(doc, LEGACY).kill_switch
    doc["features"] = [f for f in doc["features"] if f["name"] != KILL_SWITCH_FEATURE]
    assert not parse_definitions(doc, LEGACY).kill_switch, "no kill-switch feature: off"
    doc["features"].append({"name": KILL_SWITCH_FEATURE, "enabled": None})
    assert parse_definitions(doc, LEGACY).kill_switch, "malformed: on (legacy is safe)"


@pytest.mark.parametrize("doc", [{}, {"features": "x"}, {"version": 2}])
def test_not_a_features_document(doc: dict[str, Any]) -> None:
    with pytest.raises(MalformedFeature):
        parse_definitions(doc, LEGACY)


# ---------------------------------------------------------------- snapshot cache

def test_the_cache_keeps_every_fetched_document_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "snapshot.json"
    cache = SnapshotCache(path)
    assert not cache.bootstrapped and cache.fetched_at is None
    doc = definitions(FlagState({"cart": RouteFlag(Stage.NEW)}))
    cache.set(FEATURES_URL, json.dumps(doc))
    assert json.loads(path.read_text()) == doc
    assert cache.fetched_at is not None
    assert [p.name for p in path.parent.iterdir()] == ["snapshot.json"], "no temp files left"
    cache.destroy()
    assert path.exists(), "destroying the SDK's cache keeps the snapshot"
    again = SnapshotCache(path)
    assert again.bootstrapped and again.snapshot == doc
    assert json.loads(again.get(FEATURES_URL)) == doc
    assert again.fetched_at is None, "a snapshot is not a fetch"


def test_a_304_counts_as_an_answered_fetch(tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path / "s.json")
    cache.mset({ETAG: ""})
    assert cache.fetched_at is None, "the SDK's empty initial etag is no fetch"
    cache.set(ETAG, '"abc:1:v1"')
    assert cache.fetched_at is not None


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"features": 3}'])
def test_an_unreadable_snapshot_is_ignored(tmp_path: Path, content: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(content)
    cache = SnapshotCache(path)
    assert not cache.bootstrapped and cache.snapshot is None


def test_a_garbled_fetch_is_not_written_over_a_good_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    good = json.dumps(definitions(FlagState({"cart": RouteFlag(Stage.NEW)})))
    cache = SnapshotCache(path)
    cache.set(FEATURES_URL, good)
    cache.set(FEATURES_URL, "{garbled")
    assert path.read_text() == good


def test_api_url() -> None:
    assert api_url("http://u:4242") == "http://u:4242/api"
    assert api_url("http://u:4242/api/") == "http://u:4242/api"
    assert api_url("https://u/unleash/api") == "https://u/unleash/api"


# ---------------------------------------------------------------- config

BASE: dict[str, Any] = {
    "legacy": {"nodes": [{"id": "a", "url": "http://127.0.0.1:1"}]},
    "session": shop_session(),
    "new": {"instances": [{"id": "n1", "url": "http://127.0.0.1:2"}]},
    "routes": [{"name": "cart", "paths": ["/api/cart"]}],
}


def test_the_unleash_section_is_required_with_the_unleash_provider() -> None:
    with pytest.raises(ConfigError, match=r"flags\.unleash: required when provider is unleash"):
        parse({**BASE, "flags": {"provider": "unleash"}})
    with pytest.raises(ConfigError) as err:
        parse({**BASE, "flags": {"provider": "unleash", "unleash": {
            "url": "http://127.0.0.1:4242", "refresh_interval_s": 0, "token": "x"}}})
    assert "flags.unleash.refresh_interval_s: Input should be greater than or equal to 1" \
        in str(err.value)
    assert "flags.unleash.token: unknown key" in str(err.value)
    cfg = parse({**BASE, "flags": {"provider": "unleash",
                                   "unleash": {"url": "http://127.0.0.1:4242"}}})
    u = cfg.flags.unleash
    assert u is not None
    assert (u.environment, u.project, u.client_token.env, u.admin_token.env) == (
        "development", "default", "UNLEASH_CLIENT_TOKEN", "UNLEASH_ADMIN_TOKEN")
    assert u.snapshot_file == Path(".strangler/unleash-snapshot.json")
    assert parse(BASE).flags.unleash is None
