"""``traceparent`` reaches both backends: the same trace, the gateway as parent; and
the backend decision behind each answer is counted with its reason."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.harness import GatewayHarness
from tests.support.keys import KeyPair

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE}-00f067aa0ba902b7-01"


class Recorder:
    def __init__(self, status: int) -> None:
        self.status = status
        self.seen: list[dict[str, str]] = []
        app = web.Application()
        app.router.add_get("/healthz", self._health)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self.server = TestServer(app, host="127.0.0.1")

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _serve(self, request: web.Request) -> web.Response:
        self.seen.append({k.lower(): v for k, v in request.headers.items()})
        return web.json_response({"ok": self.status == 200}, status=self.status)


@pytest.fixture
async def gateway(redis_url: str, key_prefix: str, keypair: KeyPair
                  ) -> AsyncIterator[tuple[str, Recorder, Recorder, str]]:
    legacy, new = Recorder(200), Recorder(503)  # new fails: every GET falls back
    for b in (legacy, new):
        await b.server.start_server()
    harness = await GatewayHarness(
        redis_url, key_prefix, keypair, legacy={"a": str(legacy.server.make_url(""))},
        new={"n1": str(new.server.make_url(""))},
        routes=[{"name": "catalog", "paths": ["/api/products"], "stage": "new"},
                {"name": "default", "paths": ["/*"], "legacy_only": True}],
        ).start()
    try:
        yield harness.url, legacy, new, harness.admin_url
    finally:
        await harness.stop()
        for b in (legacy, new):
            await b.server.close()


async def _get(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        await resp.read()
        return resp.status


async def test_both_backends_see_the_callers_trace_with_the_gateway_as_parent(
        gateway: tuple[str, Recorder, Recorder, str]) -> None:
    url, legacy, new, _ = gateway
    status = await _get(url + "/api/products", {"traceparent": CALLER,
                                                "tracestate": "vendor=abc"})
    assert status == 200
    assert new.seen and legacy.seen, "the new call failed and legacy answered"
    sent_new, sent_legacy = new.seen[-1], legacy.seen[-1]
    assert sent_new["traceparent"] == sent_legacy["traceparent"]
    version, trace, parent, flags = sent_new["traceparent"].split("-")
    assert (version, trace, flags) == ("00", TRACE, "01")
    assert parent != CALLER.split("-")[2]
    assert sent_new["tracestate"] == sent_legacy["tracestate"] == "vendor=abc"


async def test_no_traceparent_starts_one_and_a_broken_one_loses_its_tracestate(
        gateway: tuple[str, Recorder, Recorder, str]) -> None:
    url, legacy, _, _ = gateway
    assert await _get(url + "/plain", {}) == 200
    first = legacy.seen[-1]["traceparent"]
    assert await _get(url + "/plain", {}) == 200
    second = legacy.seen[-1]["traceparent"]
    assert first.split("-")[1] != second.split("-")[1], "each request is its own trace"
    assert await _get(url + "/plain", {"traceparent": "00-nonsense-01",
                                       "tracestate": "vendor=abc"}) == 200
    sent = legacy.seen[-1]
    assert sent["traceparent"].endswith("-00") and "tracestate" not in sent


async def test_each_answer_counts_the_backend_that_served_and_why(
        gateway: tuple[str, Recorder, Recorder, str]) -> None:
    url, _, _, admin = gateway
    for _ in range(3):
        assert await _get(url + "/api/products", {}) == 200
    assert await _get(url + "/plain", {}) == 200
    async with aiohttp.ClientSession() as http, http.get(admin + "/metrics") as resp:
        text = await resp.text()
    counted = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
               if line.startswith("strangler_backend_decisions_total{")}
    assert counted == {
        'strangler_backend_decisions_total{backend="legacy",reason="fallback:new_5xx",'
        'route="catalog"}': 3.0,
        'strangler_backend_decisions_total{backend="legacy",reason="legacy_only",'
        'route="default"}': 1.0,
    }, counted
