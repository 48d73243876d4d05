"""Under a full outage of new, fallbacks are bounded; a failing instance is ejected."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.harness import GatewayHarness
from tests.support.keys import KeyPair
from tests.support.net import await_until


class Backend:
    """A real HTTP backend that counts requests and can be told to fail."""

    def __init__(self, name: str, status: int = 200) -> None:
        self.name = name
        self.status = status
        self.hits: Counter[str] = Counter()
        app = web.Application()
        app.router.add_get("/healthz", self._health)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self.server = TestServer(app, host="127.0.0.1")

    async def _health(self, request: web.Request) -> web.Response:
        self.hits["/healthz"] += 1
        return web.json_response({"status": "ok"})  # healthy as far as a probe can tell

    async def _serve(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        return web.json_response({"from": self.name}, status=self.status)

    @property
    def url(self) -> str:
        return str(self.server.make_url(""))


ROUTE = {"name": "catalog", "paths": ["/api/products", "/api/products/*"], "stage": "new"}


@pytest.fixture
async def backends() -> AsyncIterator[dict[str, Backend]]:
    found = {"legacy": Backend("legacy"), "n1": Backend("n1", 500), "n2": Backend("n2", 500)}
    for b in found.values():
        await b.server.start_server()
    yield found
    for b in found.values():
        await b.server.close()


async def _gateway(redis_url: str, key_prefix: str, keypair: KeyPair,
                   backends: dict[str, Backend], route: dict[str, Any],
                   extra: dict[str, Any] | None = None) -> GatewayHarness:
    return await GatewayHarness(
        redis_url, key_prefix, keypair, legacy={"a": backends["legacy"].url},
        new={"n1": backends["n1"].url, "n2": backends["n2"].url},
        routes=[route, {"name": "default", "paths": ["/*"], "legacy_only": True}],
        extra=extra or {}).start()


async def _get_many(url: str, n: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            async with http.get(url + "/api/products") as resp:
                statuses[resp.status] += 1
    return statuses


async def test_a_full_outage_costs_at_most_twenty_percent_extra_attempts(
        redis_url: str, key_prefix: str, keypair: KeyPair,
        backends: dict[str, Backend]) -> None:
    # Breaker and ejection turned off, so only the retry budget stands between a
    # full outage and doubling the load on legacy.
    route = {**ROUTE, "breaker": {"failures": 100_000},
             "retry_budget": {"ratio": 0.2, "min_retries": 0, "window_s": 60}}
    gw = await _gateway(redis_url, key_prefix, keypair, backends, route,
                        {"new": {"instances": [{"id": "n1", "url": backends["n1"].url},
                                               {"id": "n2", "url": backends["n2"].url}],
                                 "ejection": {"consecutive_failures": 100_000}}})
    try:
        requests = 200
        statuses = await _get_many(gw.url, requests)
    finally:
        await gw.stop()
    attempts = (backends["n1"].hits["/api/products"] + backends["n2"].hits["/api/products"]
                + backends["legacy"].hits["/api/products"])
    assert attempts <= requests * 1.2, (attempts, statuses)
    assert backends["legacy"].hits["/api/products"] == 40  # 20 % of 200, then no more
    assert statuses == Counter({200: 40, 500: 160})


async def test_with_defaults_a_full_outage_is_absorbed_by_legacy_within_budget(
        redis_url: str, key_prefix: str, keypair: KeyPair,
        backends: dict[str, Backend]) -> None:
    gw = await _gateway(redis_url, key_prefix, keypair, backends, ROUTE)  # default breaker
    try:
        statuses = await _get_many(gw.url, 100)
    finally:
        await gw.stop()
    new_attempts = backends["n1"].hits["/api/products"] + backends["n2"].hits["/api/products"]
    legacy_attempts = backends["legacy"].hits["/api/products"]
    assert new_attempts == 5, "the breaker opens after 5 consecutive failures"
    assert statuses == Counter({200: 100}), "every request answered by legacy"
    assert new_attempts + legacy_attempts <= 100 * 1.2


async def test_a_failing_instance_is_ejected_and_health_checks_do_not_bring_it_back(
        redis_url: str, key_prefix: str, keypair: KeyPair,
        backends: dict[str, Backend]) -> None:
    backends["n2"].status = 200  # n1 fails every request, n2 is fine
    route = {**ROUTE, "breaker": {"failures": 100_000}}
    gw = await _gateway(redis_url, key_prefix, keypair, backends, route,
                        {"new": {"instances": [{"id": "n1", "url": backends["n1"].url},
                                               {"id": "n2", "url": backends["n2"].url}],
                                 "ejection": {"consecutive_failures": 3, "base_ms": 60_000}}})
    try:
        await _get_many(gw.url, 20)
        before = backends["n1"].hits["/api/products"]
        assert before == 3
        checked = backends["n1"].hits["/healthz"]
        await await_until(lambda: _true(backends["n1"].hits["/healthz"] >= checked + 2),
                          timeout=5, what="two passing health checks of the ejected n1")
        statuses = await _get_many(gw.url, 40)
        assert statuses == Counter({200: 40})
        assert backends["n1"].hits["/api/products"] == before, "ejected n1 got traffic"
        assert gw.instance is not None
        assert not gw.instance.new.members["n1"].healthy
    finally:
        await gw.stop()


async def _true(value: bool) -> bool:
    return value
