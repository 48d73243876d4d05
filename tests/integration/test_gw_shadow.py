"""The shadow stage through a real gateway (in-process, real Redis) and two small
real backends, legacy and new, that differ in controlled ways:

- ``/api/clock``: a timestamp that changes on every call, on both sides -> learned
  as noise (legacy disagrees with itself there), never counted against new;
- ``/api/price``: new charges another price -> counted, in the diff log by path;
- ``/api/meta``: a build id differs, and the route ignores ``/**/build`` -> not counted;
- ``/api/slow``: new answers only after a delay -> the user never waits for it;
- ``/api/big``: legacy's answer is streamed -> skipped, counted;
- ``/api/secret``: tokens and cookies differ -> counted, never shown.

Every request a backend receives is recorded, so a test can check what new
was (not) sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.wire import SHADOW_HEADER
from gateway.runtime.app import Gateway
from strangler.shadow_cli import render
from tests.support.harness import GatewayHarness
from tests.support.keys import KeyPair
from tests.support.net import await_until

NEW_DELAY_S = 1.0
BIG_ITEMS = 60_000  # about 400 KiB of JSON: past the 256 KiB read-whole limit


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class Backend:
    """Legacy or new: the same API, answers differing where the module docstring says."""

    def __init__(self, side: str) -> None:
        self.side = side
        self.seen: list[Seen] = []
        self.answered_slow = 0
        self.release = asyncio.Event()
        """``/api/slow`` on new answers only once this is set (and NEW_DELAY_S passed)."""
        app = web.Application()
        app.router.add_get("/healthz", self._health)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self.server = TestServer(app, host="127.0.0.1")

    def requests(self, path: str, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if s.path == path and method in (None, s.method)]

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "boot_id": self.side})

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.seen.append(Seen(request.method, request.path, dict(request.headers)))
        legacy = self.side == "legacy"
        path = request.path
        if path == "/api/clock":
            return web.json_response({"name": "clock", "now": time.time_ns()})
        if path == "/api/price":
            return web.json_response({"product": {"id": 3, "name": "Teapot",
                                                  "price": "12.50" if legacy else "12.99"}})
        if path == "/api/meta":
            return web.json_response({"meta": {"build": self.side}, "value": 1})
        if path == "/api/slow":
            if not legacy:
                await asyncio.gather(asyncio.sleep(NEW_DELAY_S), self.release.wait())
                self.answered_slow += 1
            return web.json_response({"ok": True})
        if path == "/api/big":
            return web.json_response({"items": list(range(BIG_ITEMS))})
        if path == "/api/secret":
            resp = web.json_response({"token": f"{self.side.upper()}-TOKEN-VALUE", "v": 1})
            resp.set_cookie("pref", f"{self.side.upper()}-COOKIE-VALUE")
            return resp
        return web.json_response({"path": path})


def route(name: str, **shadow: Any) -> dict[str, Any]:
    return {"name": name, "paths": [f"/api/{name}"], "stage": "shadow", "shadow": shadow}


ROUTES = [
    route("clock", noise_sample_rate=1.0, noise_threshold=2),
    route("price", noise_sample_rate=1.0, noise_threshold=2),
    route("meta", ignore_paths=["/**/build"], learn_noise=False),
    route("slow", learn_noise=False),
    route("big", learn_noise=False),
    route("secret", learn_noise=False, compare_headers=["Content-Type", "Set-Cookie"]),
    {"name": "default", "paths": ["/*"], "legacy_only": True},
]


@dataclass
class Rig:
    harness: GatewayHarness
    legacy: Backend
    new: Backend

    @property
    def gateway(self) -> Gateway:
        assert self.harness.instance is not None
        return self.harness.instance

    async def get(self, path: str, method: str = "GET",
                  headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        async with aiohttp.ClientSession() as http, \
                http.request(method, self.harness.url + path, headers=headers) as resp:
            await resp.read()
            return resp

    async def shadow(self, route: str) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, \
                http.get(f"{self.harness.admin_url}/api/routes/{route}/shadow") as resp:
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = await resp.json()
            return body

    async def settled(self, route: str, compared: int) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            report = await self.shadow(route)
            return report if report["compared"] + report["errors"] >= compared else None
        found = await await_until(done, timeout=10, what=f"{compared} comparisons on {route}")
        assert found is not None
        return found

    def metric(self, name: str, **labels: str) -> float | None:
        return self.gateway.metrics.registry.get_sample_value(name, labels)


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(redis_url: str, key_prefix: str, keypair: KeyPair
                   ) -> AsyncIterator[RigFactory]:
    started: list[tuple[GatewayHarness, Backend, Backend]] = []

    async def make(**gateway: Any) -> Rig:
        legacy, new = Backend("legacy"), Backend("new")
        await legacy.server.start_server()
        await new.server.start_server()
        harness = GatewayHarness(redis_url, key_prefix, keypair,
                                 legacy={"a": str(legacy.server.make_url(""))},
                                 new={"n1": str(new.server.make_url(""))},
                                 routes=ROUTES, gateway=gateway)
        started.append((harness, legacy, new))
        await harness.start()
        return Rig(harness, legacy, new)

    yield make
    for harness, legacy, new in started:
        new.release.set()
        await harness.stop()
        await legacy.server.close()
        await new.server.close()


async def test_a_timestamp_that_changes_on_every_call_is_learned_as_noise(
        make_rig: RigFactory) -> None:
    rig = await make_rig()
    for _ in range(4):
        assert (await rig.get("/api/clock")).status == 200
    report = await rig.settled("clock", 4)
    assert (report["compared"], report["inconsistent"], report["consistency_rate"]) == (4, 0, 1.0)
    assert report["noise"]["learned"] == [{"path": "/now", "count": 4}]
    assert report["noise"]["samples"] == 4
    assert report["diff_log"]["entries"] == [] and report["top_differences"] == []
    # every copy was marked: 4 to new, and 4 second asks to legacy besides the users' 4
    assert all(s.headers.get(SHADOW_HEADER) == "1" for s in rig.new.requests("/api/clock"))
    marked = [s for s in rig.legacy.requests("/api/clock") if SHADOW_HEADER in s.headers]
    assert len(rig.new.requests("/api/clock")) == 4 and len(marked) == 4
    assert rig.metric("strangler_shadow_consistency_ratio", route="clock") == 1.0
    assert rig.metric("strangler_shadow_noise_paths", route="clock") == 1.0
    assert rig.metric("strangler_shadow_noise_comparisons_total", route="clock",
                      result="differed") == 4.0
    assert rig.metric("strangler_shadow_comparisons_total", route="clock",
                      result="match") == 4.0

    # Once learned, noise alone keeps new consistent: no more second asks to legacy.
    lane = rig.gateway.shadow.lanes["clock"]
    lane.config = lane.config.model_copy(update={"noise_sample_rate": 0.0})
    asked = len(rig.legacy.requests("/api/clock"))
    for _ in range(3):
        assert (await rig.get("/api/clock")).status == 200
    report = await rig.settled("clock", 7)
    assert len(rig.legacy.requests("/api/clock")) == asked + 3
    assert (report["compared"], report["inconsistent"]) == (7, 0)


async def test_a_real_price_difference_is_counted_and_logged_with_its_path(
        make_rig: RigFactory) -> None:
    rig = await make_rig()
    for _ in range(3):
        resp = await rig.get("/api/price", headers={"X-Request-Id": "price-check-0001"})
        assert resp.status == 200 and resp.headers["X-Strangler-Backend"] == "legacy:a"
    report = await rig.settled("price", 3)
    assert (report["compared"], report["inconsistent"], report["consistency_rate"]) == (3, 3, 0.0)
    assert report["top_differences"] == [{"path": "/product/price", "count": 3}]
    assert report["noise"]["learned"] == [], "legacy always agrees with itself on the price"
    assert report["noise"]["samples"] == 3
    entries = report["diff_log"]["entries"]
    assert 1 <= len(entries) <= 3
    e = entries[0]
    assert (e["method"], e["path"], e["legacy_status"], e["new_status"]) == (
        "GET", "/api/price", 200, 200)
    assert e["request_id"] == "price-check-0001"
    assert e["differences"] == [{"path": "/product/price", "shape": "/product/price",
                                 "kind": "value", "legacy": '"12.50"', "new": '"12.99"',
                                 "text": '/product/price: "12.50" != "12.99"'}]
    assert rig.metric("strangler_shadow_comparisons_total", route="price",
                      result="mismatch") == 3.0
    assert rig.metric("strangler_shadow_consistency_ratio", route="price") == 0.0
    text = render(report, rig.harness.admin_url, "shadow")
    assert "consistency     0.00 %  (0 of 3 compared answers matched, 3 differed)" in text
    assert '/product/price: "12.50" != "12.99"' in text

    async with aiohttp.ClientSession() as http, \
            http.get(f"{rig.harness.admin_url}/api/shadow") as resp:
        summary = {r["route"]: r for r in (await resp.json())["routes"]}
    assert summary["price"]["inconsistent"] == 3 and summary["clock"]["compared"] == 0
    assert "default" not in summary, "a legacy_only route is never shadowed"


async def test_an_ignored_path_is_not_counted(make_rig: RigFactory) -> None:
    rig = await make_rig()
    for _ in range(2):
        assert (await rig.get("/api/meta")).status == 200
    report = await rig.settled("meta", 2)
    assert (report["compared"], report["inconsistent"]) == (2, 0)
    assert report["rules"]["ignore_paths"] == ["/**/build"]
    assert report["noise"]["samples"] == 0, "learn_noise is off: legacy was asked once"
    assert len(rig.legacy.requests("/api/meta")) == 2


async def test_non_idempotent_requests_are_never_shadowed(make_rig: RigFactory) -> None:
    rig = await make_rig()
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        resp = await rig.get("/api/price", method=method)
        assert resp.status == 200 and resp.headers["X-Strangler-Backend"] == "legacy:a"
    assert (await rig.get("/api/price", method="HEAD")).status == 200
    assert (await rig.get("/api/price")).status == 200
    report = await rig.settled("price", 2)
    assert sorted(s.method for s in rig.new.seen) == ["GET", "HEAD"]
    assert sorted(s.method for s in rig.legacy.seen if SHADOW_HEADER in s.headers) == [
        "GET", "HEAD"]
    assert report["compared"] == 2 and report["skipped"] == 0


async def test_a_slow_new_instance_never_delays_the_user(make_rig: RigFactory) -> None:
    rig = await make_rig()
    for _ in range(3):
        resp = await rig.get("/api/slow")
        assert resp.status == 200
    # All three users have their answers; new has not answered one of its copies yet.
    await await_until(lambda: _true(len(rig.new.requests("/api/slow")) == 3), timeout=5,
                      what="three copies sent to new")
    assert rig.new.answered_slow == 0
    served = rig.metric("strangler_request_duration_seconds_count", route="slow",
                        backend="legacy")
    fast = rig.metric("strangler_request_duration_seconds_bucket", route="slow",
                      backend="legacy", le="0.25")
    assert served == 3.0 and fast == 3.0, (
        f"the gateway measured {served} answers, {fast} of them under 0.25 s; new takes "
        f"at least {NEW_DELAY_S} s")
    rig.new.release.set()
    report = await rig.settled("slow", 3)
    assert rig.new.answered_slow == 3
    assert (report["compared"], report["inconsistent"]) == (3, 0)


async def test_copies_are_skipped_when_every_slot_is_busy(make_rig: RigFactory) -> None:
    rig = await make_rig(shadow_concurrency=1)
    for _ in range(3):
        assert (await rig.get("/api/slow")).status == 200
    report = await rig.shadow("slow")
    assert report["skipped_by_reason"] == {"busy": 2}
    assert rig.metric("strangler_shadow_skipped_total", route="slow", reason="busy") == 2.0
    rig.new.release.set()
    report = await rig.settled("slow", 1)
    assert report["compared"] == 1 and len(rig.new.requests("/api/slow")) == 1


async def test_a_streamed_legacy_answer_is_skipped_and_counted(make_rig: RigFactory) -> None:
    rig = await make_rig()
    resp = await rig.get("/api/big")
    assert resp.status == 200
    report = await rig.shadow("big")
    assert report["skipped_by_reason"] == {"streamed": 1} and report["compared"] == 0
    assert rig.new.requests("/api/big") == []
    assert rig.metric("strangler_shadow_comparisons_total", route="big",
                      result="skipped") == 1.0


async def test_tokens_and_cookies_are_compared_but_never_stored(make_rig: RigFactory) -> None:
    rig = await make_rig()
    secret = await rig.get("/api/secret", headers={"Cookie": "client=CLIENT-COOKIE-VALUE",
                                                   "Authorization": "Bearer CLIENT-BEARER-VALUE"})
    assert secret.status == 200
    report = await rig.settled("secret", 1)
    assert report["inconsistent"] == 1
    [entry] = report["diff_log"]["entries"]
    assert [(d["path"], d["legacy"], d["new"]) for d in entry["differences"]] == [
        ("/token", "<redacted>", "<redacted>")], "cookie names match; values are not compared"
    dumped = json.dumps(report) + render(report, "http://x", None)
    for secret in ("TOKEN-VALUE", "COOKIE-VALUE", "BEARER-VALUE"):
        assert secret not in dumped


async def test_unknown_routes_are_404_on_the_admin_api(make_rig: RigFactory) -> None:
    rig = await make_rig()
    async with aiohttp.ClientSession() as http:
        for name in ("nope", "default"):
            async with http.get(f"{rig.harness.admin_url}/api/routes/{name}/shadow") as resp:
                assert resp.status == 404
                assert (await resp.json())["error"] == "unknown_route"


async def _true(value: bool) -> bool:
    return value
