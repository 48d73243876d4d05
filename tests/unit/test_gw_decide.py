"""gateway.routing.decide: which backend serves a route, from flags (real Unleash SDK) and
guards."""

from __future__ import annotations

import random

import pytest

from flags import FlagState, FlagView, RouteFlag, Stage
from gateway.errors import NewUnavailable, ServiceUnavailable
from gateway.routing.breaker import Breaker, State
from gateway.routing.decide import Backend, Decider, Decision, guard
from gateway.routing.routes import Route
from gateway.settings import RouteSection


def make_route(name: str, *, legacy_only: bool = False) -> Route:
    return Route.from_config(RouteSection(name=name, paths=(f"/{name}",),
                                          legacy_only=legacy_only))


ROUTES = {n: make_route(n) for n in ("catalog", "cart", "checkout", "orders", "auth")}
ROUTES["pages"] = make_route("pages", legacy_only=True)


def view(flags: dict[str, RouteFlag], *, kill: bool = False, version: int = 1) -> FlagView:
    return FlagView(FlagState(flags, kill, version))


def keys(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        (RouteFlag(Stage.LEGACY), Decision(Backend.LEGACY, "stage_legacy")),
        (RouteFlag(Stage.SHADOW), Decision(Backend.LEGACY, "stage_shadow", shadow=True)),
        (RouteFlag(Stage.NEW), Decision(Backend.NEW, "stage_new")),
        (RouteFlag(Stage.COMPLETE), Decision(Backend.NEW, "stage_complete", fallback=False)),
        (RouteFlag(Stage.CANARY, 100), Decision(Backend.NEW, "canary_in")),
        (RouteFlag(Stage.CANARY, 0), Decision(Backend.LEGACY, "canary_out")),
    ],
)
def test_each_stage_gives_its_documented_decision(flag: RouteFlag, expected: Decision) -> None:
    decider = Decider(ROUTES, view({"cart": flag}))
    for key in [None, *keys(20)]:
        if flag.stage is Stage.CANARY and key is None:
            continue
        assert decider.flag_decision(ROUTES["cart"], key) == expected


def test_only_canary_needs_a_session_key() -> None:
    flags = {"catalog": RouteFlag(Stage.NEW), "cart": RouteFlag(Stage.CANARY, 50),
             "checkout": RouteFlag(Stage.SHADOW), "orders": RouteFlag(Stage.COMPLETE)}
    decider = Decider(ROUTES, view(flags))
    assert {n: decider.needs_key(r) for n, r in ROUTES.items()} == {
        "catalog": False, "cart": True, "checkout": False, "orders": False, "auth": False,
        "pages": False,
    }


def test_canary_without_a_key_stays_on_legacy() -> None:
    decider = Decider(ROUTES, view({"cart": RouteFlag(Stage.CANARY, 100)}))
    assert decider.flag_decision(ROUTES["cart"], None) == Decision(Backend.LEGACY, "canary_out")


def test_a_route_without_a_flag_is_legacy() -> None:
    decider = Decider(ROUTES, view({}))
    assert decider.flag_decision(ROUTES["orders"], "k" * 20).backend is Backend.LEGACY


def test_kill_switch_sends_every_route_to_legacy() -> None:
    flags = {"catalog": RouteFlag(Stage.NEW), "cart": RouteFlag(Stage.CANARY, 100),
             "checkout": RouteFlag(Stage.COMPLETE), "orders": RouteFlag(Stage.SHADOW)}
    decider = Decider(ROUTES, view(flags, kill=True))
    for name, route in ROUTES.items():
        for key in keys(30):
            decision = decider.flag_decision(route, key)
            assert decision.backend is Backend.LEGACY, name
            assert not decision.shadow, name
        assert not decider.needs_key(route)


def test_legacy_only_routes_are_always_legacy() -> None:
    for flag in (RouteFlag(Stage.NEW), RouteFlag(Stage.COMPLETE), RouteFlag(Stage.CANARY, 100)):
        decider = Decider(ROUTES, view({"pages": flag}))
        for key in keys(10):
            assert decider.flag_decision(ROUTES["pages"], key) == Decision(Backend.LEGACY,
                                                                           "legacy_only")


def test_update_applies_a_flip_and_a_flip_back() -> None:
    decider = Decider(ROUTES, view({"cart": RouteFlag(Stage.LEGACY)}))
    assert decider.flag_decision(ROUTES["cart"], "s" * 20).backend is Backend.LEGACY
    decider.update(view({"cart": RouteFlag(Stage.NEW)}, version=2))
    assert decider.flag_decision(ROUTES["cart"], "s" * 20).backend is Backend.NEW
    decider.update(view({"cart": RouteFlag(Stage.NEW)}, kill=True, version=3))
    assert decider.flag_decision(ROUTES["cart"], "s" * 20).backend is Backend.LEGACY
    assert decider.view.kill_switch


def test_canary_decision_follows_the_sdk_answer() -> None:
    v = view({"cart": RouteFlag(Stage.CANARY, 30)})
    decider = Decider(ROUTES, v)
    for key in keys(300):
        backend = decider.flag_decision(ROUTES["cart"], key).backend
        assert (backend is Backend.NEW) == v.evaluate_uncached("cart", key)


# ---------------------------------------------------------------- guard


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def open_breaker(clock: Clock | None = None) -> Breaker:
    b = Breaker("cart", failures=1, cooldown_s=10, clock=clock or Clock())
    b.failure("connect")
    assert b.state is State.OPEN
    return b


def state_of(breaker: Breaker) -> State:
    return breaker.state


def closed_breaker() -> Breaker:
    return Breaker("cart", failures=5, cooldown_s=10, clock=Clock())


NEW = Decision(Backend.NEW, "stage_new")
CANARY_IN = Decision(Backend.NEW, "canary_in")
COMPLETE = Decision(Backend.NEW, "stage_complete", fallback=False)


@pytest.mark.parametrize("decision", [NEW, CANARY_IN])
def test_guard_passes_a_new_decision_when_new_can_serve(decision: Decision) -> None:
    out = guard(decision, store_up=True, breaker=closed_breaker(), new_healthy=True)
    assert out == decision


@pytest.mark.parametrize("decision", [NEW, CANARY_IN])
@pytest.mark.parametrize(
    ("store_up", "new_healthy", "breaker_open", "reason"),
    [
        (False, True, False, "session_store_down"),
        (True, False, False, "no_new_instance"),
        (True, True, True, "breaker_open"),
        (False, False, True, "session_store_down"),
        (True, False, True, "no_new_instance"),
    ],
)
def test_guard_sends_to_legacy_with_the_reason(decision: Decision, store_up: bool,
                                               new_healthy: bool, breaker_open: bool,
                                               reason: str) -> None:
    breaker = open_breaker() if breaker_open else closed_breaker()
    out = guard(decision, store_up=store_up, breaker=breaker, new_healthy=new_healthy)
    assert out.backend is Backend.LEGACY
    assert out.reason == reason
    assert out.fallback


@pytest.mark.parametrize(
    ("store_up", "new_healthy", "breaker_open"),
    [(False, True, False), (True, False, False), (True, True, True)],
)
def test_guard_on_a_complete_route_is_503(store_up: bool, new_healthy: bool,
                                          breaker_open: bool) -> None:
    breaker = open_breaker() if breaker_open else closed_breaker()
    with pytest.raises(ServiceUnavailable):
        guard(COMPLETE, store_up=store_up, breaker=breaker, new_healthy=new_healthy)


@pytest.mark.parametrize("decision", [Decision(Backend.LEGACY, "stage_legacy"),
                                      Decision(Backend.LEGACY, "stage_shadow", shadow=True)])
def test_guard_leaves_legacy_decisions_alone(decision: Decision) -> None:
    clock = Clock()
    breaker = open_breaker(clock)
    clock.now = 1000.0  # cool-down over: the next allow() would take the half-open probe
    out = guard(decision, store_up=False, breaker=breaker, new_healthy=False)
    assert out is decision
    assert breaker.state is State.OPEN  # a legacy request must not use up the probe


def test_guard_lets_the_half_open_probe_through_once() -> None:
    clock = Clock()
    breaker = open_breaker(clock)
    clock.now = 10.0
    first = guard(NEW, store_up=True, breaker=breaker, new_healthy=True)
    second = guard(NEW, store_up=True, breaker=breaker, new_healthy=True)
    assert first == NEW
    assert second == Decision(Backend.LEGACY, "breaker_open", replaced=NEW)
    assert second.steps == ("stage_new", "breaker_open")


def test_each_sdk_evaluation_is_reported_once_per_session_and_flag_version() -> None:
    told: list[tuple[str, bool]] = []
    decider = Decider(ROUTES, view({"cart": RouteFlag(Stage.CANARY, 100)}),
                      lambda route, hit: told.append((route, hit)))
    for key in ("s1", "s1", "s2", "s1"):
        decider.flag_decision(ROUTES["cart"], key)
    assert told == [("cart", True), ("cart", True)], "the memo answers repeats"
    decider.update(view({"cart": RouteFlag(Stage.CANARY, 0)}, version=2))
    decider.flag_decision(ROUTES["cart"], "s1")
    decider.flag_decision(ROUTES["orders"], "s1")  # no flag: no evaluation
    assert told[-1] == ("cart", False), "a new flag version asks the SDK again"
    assert len(told) == 3


# ---------------------------------------------------------------- decide: the one answer


async def decide(decider: Decider, sid: str | None, cid: str | None, *,
                 breaker: Breaker | None = None, acting: bool = True) -> Decision:
    return await decider.decide(ROUTES["cart"], sid, cid, store_up=True, new_healthy=True,
                                breaker=breaker or closed_breaker(), pins=None, acting=acting)


async def test_a_canary_buckets_a_request_without_a_session_by_its_cid() -> None:
    v = view({"cart": RouteFlag(Stage.CANARY, 50)})
    decider = Decider(ROUTES, v)
    reasons = set()
    for cid in keys(40, seed=7):
        decision = await decide(decider, None, cid)
        reasons.add(decision.reason)
        assert (decision.reason == "canary_in") == v.evaluate_uncached("cart", cid), cid
    assert reasons == {"canary_in", "canary_out"}, "both sides seen: the cid decided"


async def test_a_session_id_outranks_the_cid() -> None:
    v = view({"cart": RouteFlag(Stage.CANARY, 50)})
    decider = Decider(ROUTES, v)
    sids, cids = keys(30, seed=3), keys(30, seed=4)
    for sid, cid in zip(sids, cids, strict=True):
        decision = await decide(decider, sid, cid)
        assert (decision.reason == "canary_in") == v.evaluate_uncached("cart", sid)


async def test_without_any_key_a_canary_stays_on_legacy() -> None:
    decider = Decider(ROUTES, view({"cart": RouteFlag(Stage.CANARY, 100)}))
    assert decider.needs_key(ROUTES["cart"]), "the pipeline gives such a client a cid first"
    assert await decide(decider, None, None) == Decision(Backend.LEGACY, "canary_out")


async def test_explain_peeks_at_the_half_open_breaker_and_the_pipeline_claims_it() -> None:
    clock = Clock()
    breaker = open_breaker(clock)
    decider = Decider(ROUTES, view({"cart": RouteFlag(Stage.NEW)}))
    assert (await decide(decider, "s" * 20, None, breaker=breaker, acting=False)).reason \
        == "breaker_open"
    clock.now = 10.0  # cool-down over: one probe may go
    for _ in range(3):  # explaining it any number of times leaves the probe alone
        told = await decide(decider, "s" * 20, None, breaker=breaker, acting=False)
        assert told == NEW
    assert state_of(breaker) is State.OPEN
    assert await decide(decider, "s" * 20, None, breaker=breaker) == NEW, "the probe"
    assert state_of(breaker) is State.HALF_OPEN
    after = await decide(decider, "s" * 20, None, breaker=breaker, acting=False)
    assert after.reason == "breaker_open", "the probe is out: explain says what comes next"
    assert (await decide(decider, "s" * 20, None, breaker=breaker)).reason == "breaker_open"


async def test_a_complete_route_new_cannot_serve_names_its_steps() -> None:
    decider = Decider(ROUTES, view({"cart": RouteFlag(Stage.COMPLETE)}))
    with pytest.raises(NewUnavailable) as refused:
        await decide(decider, None, None, breaker=open_breaker())
    assert refused.value.reason == "breaker_open"
    assert refused.value.steps == ("stage_complete", "breaker_open")
    assert refused.value.status == 503
