"""The decide stage (gateway/pipeline/decide.py), driven through the real pipeline: each
stage, the kill switch and each guard (breaker open, session store down, no new instance)
sends a request where ``gateway.routing.decide`` says, with the reason it documents; a
client without a session on a canary route gets a ``strangler_cid`` and keeps its side."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gateway.routing.breaker import State
from testkit.fakes import Reply as Answer
from tests.support.memory_gateway import (
    NEW,
    SID,
    MemoryGateway,
    cookie,
    memory_gateway,
    request,
    route,
    set_cookies,
    side,
    title,
)

CATALOG = "/api/products"


def kill_switch(data: dict[str, Any]) -> None:
    data["flags"]["kill_switch"] = True


def decided(gw: MemoryGateway, backend: str, reason: str) -> float:
    """How many catalog requests this decision served."""
    return gw.count("strangler_backend_decisions_total", route="catalog", backend=backend,
                    reason=reason)


@pytest.mark.parametrize(("stage", "expected", "reason"), [
    ({"stage": "legacy"}, "legacy", "stage_legacy"),
    ({"stage": "shadow"}, "legacy", "stage_shadow"),
    ({"stage": "canary", "percent": 0}, "legacy", "canary_out"),
    ({"stage": "canary", "percent": 100}, "new", "canary_in"),
    ({"stage": "new"}, "new", "stage_new"),
    ({"stage": "complete"}, "new", "stage_complete"),
])
async def test_each_stage_serves_where_the_decider_says(
        tmp_path: Path, stage: dict[str, Any], expected: str, reason: str) -> None:
    async with memory_gateway(tmp_path, route("catalog", **stage)) as gw:
        assert side(await gw.send(request("GET", CATALOG))) == expected
        assert decided(gw, expected, reason) == 1


async def test_a_legacy_only_route_never_moves(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, kill_switch) as gw:
        assert side(await gw.send(request("GET", "/about"))) == "legacy"
        assert gw.count("strangler_backend_decisions_total", route="default",
                        backend="legacy", reason="legacy_only") == 1


async def test_the_kill_switch_sends_a_migrated_route_back_to_legacy(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, route("catalog", stage="complete"), kill_switch) as gw:
        assert side(await gw.send(request("GET", CATALOG))) == "legacy"
        assert decided(gw, "legacy", "kill_switch") == 1


async def test_an_open_breaker_keeps_requests_off_new(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, route("catalog", stage="new",
                                              breaker={"failures": 2})) as gw:
        for n in NEW:
            gw.backends[n].script(Answer(503))
        for _ in range(2):  # new fails, legacy answers: two failures
            assert side(await gw.send(request("GET", CATALOG))) == "legacy"
        assert len(gw.received(*NEW)) == 2
        assert side(await gw.send(request("GET", CATALOG))) == "legacy"
        assert len(gw.received(*NEW)) == 2, "new not asked"
        assert decided(gw, "legacy", "breaker_open") == 1


async def test_after_the_cool_down_a_probe_goes_to_new_and_its_success_closes_the_breaker(
        tmp_path: Path) -> None:
    guarded = route("catalog", stage="new", breaker={"failures": 1, "cooldown_ms": 1})
    async with memory_gateway(tmp_path, guarded) as gw:
        breaker = gw.parts.breakers["catalog"]
        gw.parts.held.new.mark_down("n2", "one instance, so the probe meets the same one")
        gw.backends["n1"].script(Answer(503))
        assert side(await gw.send(request("GET", CATALOG))) == "legacy"
        assert breaker.state is State.OPEN
        deadline = time.monotonic() + 5
        while breaker.peek() != "half_open":  # the 1 ms cool-down: a spin, no sleep
            assert time.monotonic() < deadline
        assert side(await gw.send(request("GET", CATALOG))) == "new"
        assert breaker.state is State.CLOSED, "the probe was claimed, and it succeeded"
        assert [gw.count("strangler_breaker_transitions_total", route="catalog", to=to)
                for to in ("open", "half_open", "closed")] == [1, 1, 1]


async def test_a_session_store_outage_keeps_requests_off_new(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, route("catalog", stage="new")) as gw:
        gw.store.outage()
        assert side(await gw.send(request("GET", CATALOG))) == "legacy"
        assert decided(gw, "legacy", "session_store_down") == 1


async def test_no_healthy_new_instance_keeps_requests_off_new(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, route("catalog", stage="new")) as gw:
        for n in NEW:
            gw.backends[n].fail_next()
        await gw.parts.held.new.check_all()
        assert side(await gw.send(request("GET", CATALOG))) == "legacy"
        assert len(gw.received(*NEW)) == 2, "only the health checks"
        assert decided(gw, "legacy", "no_new_instance") == 1


async def test_a_complete_route_that_new_cannot_serve_is_503(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, route("catalog", stage="complete")) as gw:
        gw.store.outage()
        reply = await gw.send(request("GET", CATALOG))
        assert (reply.status, title(reply)) == (503, "unavailable")
        assert reply.headers["Retry-After"] == "1"
        assert gw.received() == [], "legacy no longer serves a complete route"


async def test_a_canary_client_without_a_cid_gets_one_and_keeps_its_side(
        tmp_path: Path) -> None:
    """Many fresh clients at 50 %: some on each side, every one kept on its first side."""
    async with memory_gateway(tmp_path, route("catalog", stage="canary", percent=50)) as gw:
        sides: dict[str, set[str]] = {}
        for _ in range(40):
            first = await gw.send(request("GET", CATALOG))
            cid, _, attributes = set_cookies(first)["strangler_cid"].partition(";")
            assert len(cid) >= 16 and "Max-Age=2592000" in attributes
            again = await gw.send(request("GET", CATALOG, [cookie(strangler_cid=cid)]))
            assert "strangler_cid" not in set_cookies(again)
            sides.setdefault(cid, set()).update({side(first), side(again)})
        assert len(sides) == 40 and all(len(s) == 1 for s in sides.values())
        assert set().union(*sides.values()) == {"new", "legacy"}


@pytest.mark.parametrize("headers", [
    [cookie(shop_session=SID)],  # a session is the key
    [cookie(strangler_cid="mine")],
], ids=["session", "own-cid"])
async def test_no_cid_is_given_to_a_client_with_a_key(
        tmp_path: Path, headers: list[tuple[str, str]]) -> None:
    async with memory_gateway(tmp_path, route("catalog", stage="canary", percent=100)) as gw:
        gw.seed()
        reply = await gw.send(request("GET", CATALOG, headers))
        assert reply.status == 200 and "strangler_cid" not in set_cookies(reply)


async def test_no_cid_is_given_off_a_canary(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, route("catalog", stage="new")) as gw:
        reply = await gw.send(request("GET", CATALOG))
        assert reply.status == 200 and "Set-Cookie" not in reply.headers
