"""flags.view: canary membership from the real Unleash SDK, bootstrapped locally (no network)."""

from __future__ import annotations

import itertools
import random

import pytest

from flags import FlagState, FlagView, RouteFlag, Stage

N = 2000


def keys(n: int = N, seed: int = 2026) -> list[str]:
    rng = random.Random(seed)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return ["".join(rng.choice(alphabet) for _ in range(43)) for _ in range(n)]


KEYS = keys()


def canary(percent: int, *, version: int = 1, route: str = "cart") -> FlagView:
    return FlagView(FlagState({route: RouteFlag(Stage.CANARY, percent)}, False, version))


def on_new(v: FlagView, ks: list[str] = KEYS, route: str = "cart") -> set[str]:
    return {k for k in ks if v.in_canary(route, k)}


def test_canary_is_sticky_per_session() -> None:
    v = canary(30)
    first = {k: v.in_canary("cart", k) for k in KEYS[:200]}
    for _ in range(5):
        assert {k: v.in_canary("cart", k) for k in KEYS[:200]} == first
    assert {k: v.evaluate_uncached("cart", k) for k in KEYS[:200]} == first


def test_canary_is_sticky_across_rebuilt_views_and_processes() -> None:
    # a flag change elsewhere rebuilds the view (new version, new SDK client);
    # at the same percentage nobody may switch sides
    sample = KEYS[:500]
    baseline = on_new(canary(30, version=1), sample)
    for version in (2, 17, 1000):
        assert on_new(canary(30, version=version), sample) == baseline
    other_app = FlagView(FlagState({"cart": RouteFlag(Stage.CANARY, 30)}, False, 5),
                         app_name="gateway-2")
    assert on_new(other_app, sample) == baseline


STEPS = (10, 30, 20, 50)


@pytest.fixture(scope="module")
def rollout() -> dict[int, set[str]]:
    """Who is on new at each step of a ramp 10 -> 30 -> 20 -> 50 (one view per flip)."""
    return {pct: on_new(canary(pct, version=i + 1)) for i, pct in enumerate(STEPS)}


@pytest.mark.parametrize("percent", STEPS)
def test_share_of_sessions_matches_the_percentage(rollout: dict[int, set[str]],
                                                  percent: int) -> None:
    share = len(rollout[percent]) / N
    assert abs(share - percent / 100) <= 0.04, share


def test_moving_the_percentage_only_moves_sessions_the_right_way(
        rollout: dict[int, set[str]]) -> None:
    for before, after in itertools.pairwise(STEPS):
        if after > before:
            assert rollout[before] <= rollout[after], f"raising {before}->{after} sent some back"
        else:
            assert rollout[after] <= rollout[before], f"lowering {before}->{after} sent some on"
    assert rollout[10] < rollout[20] < rollout[30] < rollout[50]


def test_zero_and_hundred_percent_are_absolute() -> None:
    sample = KEYS[:500]
    assert on_new(canary(0), sample) == set()
    assert on_new(canary(100), sample) == set(sample)


def test_only_canary_routes_have_members() -> None:
    state = FlagState({"cart": RouteFlag(Stage.NEW), "orders": RouteFlag(Stage.SHADOW),
                       "auth": RouteFlag(Stage.CANARY, 100)}, False, 1)
    v = FlagView(state)
    assert not any(v.in_canary("cart", k) for k in KEYS[:50])
    assert not any(v.in_canary("orders", k) for k in KEYS[:50])
    assert not any(v.in_canary("unknown", k) for k in KEYS[:50])
    assert all(v.in_canary("auth", k) for k in KEYS[:50])


def test_routes_at_the_same_percentage_bucket_independently() -> None:
    state = FlagState({"cart": RouteFlag(Stage.CANARY, 50),
                       "orders": RouteFlag(Stage.CANARY, 50)}, False, 1)
    v = FlagView(state)
    cart, orders = on_new(v, KEYS[:500], "cart"), on_new(v, KEYS[:500], "orders")
    assert cart != orders  # each route's rollout is its own group


def test_view_exposes_state_and_kill_switch() -> None:
    flag = RouteFlag(Stage.CANARY, 25)
    v = FlagView(FlagState({"cart": flag}, True, 9))
    assert v.kill_switch is True
    assert v.flag("cart") == flag
    assert v.flag("nope") is None
    assert v.state.version == 9
