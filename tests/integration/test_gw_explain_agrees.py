"""Explain and the pipeline give the same answer: one decision function, two callers.

A real gateway (in-process; real Redis for flags and pins, a real SQLite
ledger) in front of two small real backends. For every case of the matrix --
each stage, a canary at 0, 50 and 100 %, with and without a session, with and
without a ``strangler_cid``, under the kill switch, with the route's breaker
open, with no healthy new instance, with pinned sessions -- the admin API's
explain is asked first (twice), then the pipeline's own first stages take the
same request: its cookie reading and its decision, on a real aiohttp
``Request`` (bridging and forwarding come after the decision and are other
tests' business). Both must name the same backend and reason. Explain going
first means an explain that changed anything (took the breaker's half-open
probe, pinned a session) would show up as a disagreement.
"""

from __future__ import annotations

import random
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from adapters.wire import CLIENT_COOKIE, SESSION_COOKIE
from flags import Stage
from gateway.edge.http import Incoming
from gateway.errors import NewUnavailable
from gateway.routing.explain import UNBUCKETED
from gateway.runtime.app import Gateway
from tests.support.harness import GatewayHarness
from tests.support.keys import KeyPair
from tests.support.net import await_until

STAGES: list[tuple[Stage, int | None]] = [
    (Stage.LEGACY, None), (Stage.SHADOW, None), (Stage.CANARY, 0), (Stage.CANARY, 50),
    (Stage.CANARY, 100), (Stage.NEW, None), (Stage.COMPLETE, None),
]
SITUATIONS = ("normal", "kill_switch", "breaker_open", "no_new_instance", "pinned")
HALF_OPEN_AFTER_MS = 2000
"""The breaker's cool-down in the half-open test: what follows the probe must fit in it."""

_rng = random.Random(6)  # fixed keys: at 50 %, three of each kind on each side (checked)


def _key(n: int) -> str:
    return "".join(_rng.choice(string.ascii_letters + string.digits) for _ in range(n))


SIDS = [_key(32) for _ in range(6)]
CIDS = [_key(22) for _ in range(6)]
CASES: list[tuple[str | None, str | None]] = [
    (None, None), *((s, None) for s in SIDS), *((None, c) for c in CIDS),
    *zip(SIDS, CIDS, strict=True),
]

Answer = tuple[str | None, str]


@dataclass
class Env:
    gateway: Gateway
    admin_url: str
    http: aiohttp.ClientSession

    async def explain(self, sid: str | None, cid: str | None) -> Answer:
        query = {"method": "GET", "path": "/api/cart", "session": sid or "", "cid": cid or ""}
        async with self.http.get(self.admin_url + "/api/explain", params=query) as resp:
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = await resp.json()
        return body["backend"], body["reason"]

    async def pipeline(self, sid: str | None, cid: str | None) -> tuple[Answer, str | None]:
        """The pipeline's answer, and the cid it gave the client (if it made one)."""
        cookies = "; ".join(f"{name}={value}" for name, value in
                            ((SESSION_COOKIE, sid), (CLIENT_COOKIE, cid)) if value)
        headers = {"Host": "gw.test", **({"Cookie": cookies} if cookies else {})}
        request = Incoming("GET", "/api/cart", (1, 1), CIMultiDictProxy(CIMultiDict(headers)),
                           "127.0.0.1")
        ex = await self.gateway.pipeline.prepare(request, "explain-agrees")
        try:
            decision = await self.gateway.pipeline.decide(ex)
        except NewUnavailable as exc:
            return ("none (503)", exc.reason), ex.new_cid
        return (decision.backend.value, decision.reason), ex.new_cid


def _backend_app() -> web.Application:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "boot_id": "b1"})

    async def serve(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/healthz", health)
    app.router.add_route("*", "/{tail:.*}", serve)
    return app


@pytest.fixture
async def env(request: pytest.FixtureRequest, redis_url: str, key_prefix: str, keypair: KeyPair,
              tmp_path: Path, redis_client: Any) -> AsyncIterator[tuple[str, Env]]:
    situation: str = request.param
    backends = [TestServer(_backend_app(), host="127.0.0.1") for _ in range(2)]
    for b in backends:
        await b.start_server()
    cooldown_ms = HALF_OPEN_AFTER_MS if situation == "half_open" else 600_000
    shopping = {"group": "shopping", "pin": True,
                "breaker": {"failures": 1, "cooldown_ms": cooldown_ms}}
    harness = GatewayHarness(
        redis_url, key_prefix, keypair, legacy={"a": str(backends[0].make_url(""))},
        # no_new_instance: nothing listens on port 9, so no health check passes
        new={"n1": "http://127.0.0.1:9" if situation == "no_new_instance"
             else str(backends[1].make_url(""))},
        routes=[{"name": "cart", "paths": ["/api/cart", "/api/cart/*"], **shopping},
                {"name": "checkout", "paths": ["/api/checkout"], **shopping},
                {"name": "default", "paths": ["/*"], "legacy_only": True}],
        extra={"database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"}})
    await harness.start()
    gw = harness.instance
    assert gw is not None
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    try:
        if situation != "no_new_instance":
            await await_until(_healthy(gw), timeout=5, what="a healthy new instance")
        if situation == "kill_switch":
            await gw.service.kill(True, actor="test", source="test")
        if situation in ("breaker_open", "half_open"):
            gw.breakers["cart"].failure("test: open it")
        yield situation, Env(gw, harness.admin_url, http)
    finally:
        await http.close()
        await harness.stop()
        for b in backends:
            await b.close()


def _healthy(gw: Gateway) -> Any:
    async def check() -> bool:
        return bool(gw.new.healthy)
    return check


@pytest.mark.parametrize("env", SITUATIONS, indirect=True)
async def test_explain_and_the_pipeline_agree_on_every_case(env: tuple[str, Env]) -> None:
    situation, e = env
    seen: set[tuple[str, str]] = set()
    half: set[tuple[str, str]] = set()
    """(what the 50 % canary bucketed by, the reason): each key kind must land on both sides."""
    for stage, percent in STAGES:
        await e.gateway.service.flip("cart", stage, percent, actor="test", source="test")
        if situation == "pinned":
            for pinned in SIDS[::2]:
                await e.gateway.pins.add("cart", e.gateway.store.handle(pinned))  # by handle
        for sid, cid in CASES:
            case = f"{situation}, {stage.value} {percent}%, session {sid}, cid {cid}"
            told = await e.explain(sid, cid)
            assert await e.explain(sid, cid) == told, f"explain changed something: {case}"
            did, minted = await e.pipeline(sid, cid)
            if told[1] == UNBUCKETED:
                # Nothing to bucket by: the pipeline gave the client a cid first. Asked
                # with that cid, explain must say what the pipeline did.
                assert minted is not None, case
                assert told[0] is None, case
                told = await e.explain(None, minted)
            else:
                assert minted is None, f"a cid made where none was needed: {case}"
            assert told == did, case
            seen.add((stage.value, did[1]))
            if percent == 50:
                half.add(("sid" if sid else "cid", did[1]))
    assert_the_matrix_meant_something(situation, seen)
    if situation == "normal":
        assert {("sid", "canary_in"), ("sid", "canary_out"), ("cid", "canary_in"),
                ("cid", "canary_out")} <= half, sorted(half)


def assert_the_matrix_meant_something(situation: str, seen: set[tuple[str, str]]) -> None:
    """Each situation must have produced the answers it is about, or it proved nothing."""
    reasons = {reason for _, reason in seen}
    expected = {
        "normal": {"canary_in", "canary_out", "stage_new", "stage_complete", "stage_shadow"},
        "kill_switch": {"kill_switch"},
        "breaker_open": {"breaker_open"},
        "no_new_instance": {"no_new_instance"},
        "pinned": {"pinned", "canary_in", "canary_out"},
    }[situation]
    assert expected <= reasons, (situation, sorted(seen))
    if situation == "kill_switch":
        assert reasons == {"kill_switch"}
    if situation in ("breaker_open", "no_new_instance"):
        assert ("complete", situation) in seen, "a complete route new cannot serve: 503"


@pytest.mark.parametrize("env", ["half_open"], indirect=True)
async def test_explain_never_takes_the_half_open_probe(env: tuple[str, Env]) -> None:
    _, e = env
    await e.gateway.service.flip("cart", Stage.NEW, None, actor="test", source="test")
    breaker = e.gateway.breakers["cart"]
    assert await e.explain(SIDS[0], None) == ("legacy", "breaker_open")
    await await_until(_peek(breaker, "half_open"), timeout=HALF_OPEN_AFTER_MS / 1000 + 5,
                      what="the cool-down to end")
    for _ in range(3):  # one probe may go now: explain says so, and leaves it there
        assert await e.explain(SIDS[0], None) == ("new", "stage_new")
    assert (await e.pipeline(SIDS[0], None))[0] == ("new", "stage_new"), "the pipeline's probe"
    # the probe is out: until it reports back (or the cool-down passes again) none other goes
    assert await e.explain(SIDS[1], None) == ("legacy", "breaker_open")
    assert (await e.pipeline(SIDS[1], None))[0] == ("legacy", "breaker_open")


def _peek(breaker: Any, state: str) -> Any:
    async def check() -> bool:
        return bool(breaker.peek() == state)
    return check


@pytest.mark.parametrize("env", ["normal"], indirect=True)
async def test_explain_tells_which_key_a_canary_bucketed_by(env: tuple[str, Env]) -> None:
    _, e = env
    await e.gateway.service.flip("cart", Stage.CANARY, 50, actor="ops", source="test",
                                 reason="half")

    async def ask(**query: str) -> tuple[int, dict[str, Any]]:
        async with e.http.get(e.admin_url + "/api/explain",
                              params={"path": "/api/cart", **query}) as resp:
            return resp.status, await resp.json()

    status, by_cid = await ask(cid=CIDS[0])
    assert status == 200
    assert by_cid["cid"] == CIDS[0] and by_cid["session"] is None
    assert "murmur3 of 'strangler.group.shopping:<cid>'" in by_cid["steps"][-1]
    assert 1 <= by_cid["bucket"] <= 100 and by_cid["percent"] == 50
    assert (by_cid["bucket"] <= 50) == (by_cid["reason"] == "canary_in")
    assert "canary 50%" in by_cid["set_by"] and "ops" in by_cid["set_by"]

    _, by_sid = await ask(session=SIDS[0], cid=CIDS[0])
    assert "'strangler.group.shopping:<sid>'" in by_sid["steps"][-1], "a session outranks a cid"

    _, nothing = await ask()
    assert (nothing["backend"], nothing["reason"]) == (None, UNBUCKETED)
    assert "new strangler_cid" in nothing["steps"][-1]

    for bad in ("a b", "x;y", "é", "x" * 257):
        status, body = await ask(cid=bad)
        assert status == 400 and "cid" in body["detail"], bad
