"""Config reload through the admin API, in a real gateway in front of real backends.

The gateway runs in-process (real Redis); its ``load`` is the harness's config
builder, so a test edits the harness and asks for a reload, as an operator edits
config.yaml. What the proxy does afterwards is the proof a change took effect.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.runtime.app import Gateway
from tests.support.harness import ADMIN_TOKEN, INTERNAL_TOKEN, GatewayHarness
from tests.support.keys import KeyPair
from tests.support.net import await_until


def _node(name: str) -> web.Application:
    async def who(request: web.Request) -> web.Response:
        return web.json_response({"node": name})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.json_response({"node": name, "slow": True})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "boot_id": name})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/slow", slow)
    app.router.add_get("/{tail:.*}", who)
    return app


@dataclass
class Running:
    harness: GatewayHarness
    gateway: Gateway
    urls: dict[str, str]
    http: aiohttp.ClientSession

    async def get(self, path: str) -> tuple[int, dict[str, object]]:
        async with self.http.get(self.harness.url + path) as resp:
            return resp.status, await resp.json(content_type=None)

    async def reload(self, token: str | None = ADMIN_TOKEN) -> tuple[int, dict[str, object]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.post(self.harness.admin_url + "/api/reload",
                                  headers=headers) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def running(redis_url: str, key_prefix: str, keypair: KeyPair) -> AsyncIterator[Running]:
    nodes = {n: TestServer(_node(n), host="127.0.0.1") for n in ("a", "b")}
    for server in nodes.values():
        await server.start_server()
    urls = {n: str(s.make_url("")).rstrip("/") for n, s in nodes.items()}
    h = GatewayHarness(redis_url, key_prefix, keypair, legacy={"a": urls["a"]})
    os.environ["STRANGLER_TEST_INTERNAL_TOKEN"] = INTERNAL_TOKEN
    os.environ["STRANGLER_TEST_ADMIN_TOKEN"] = ADMIN_TOKEN
    gateway = h.instance = Gateway(h.config(), load=h.config)
    await gateway.start()
    try:
        async with aiohttp.ClientSession() as http:
            yield Running(h, gateway, urls, http)
    finally:
        await h.stop()
        for server in nodes.values():
            await server.close()


async def test_upstreams_timeouts_and_routes_change_live(running: Running) -> None:
    h = running.harness
    assert await running.get("/who") == (200, {"node": "a"})
    assert (await running.get("/slow"))[0] == 200

    h.legacy = {"b": running.urls["b"]}
    h.gateway["timeouts"] = {"connect_ms": 500, "request_ms": 300}
    h.routes = [{"name": "reports", "paths": ["/reports/*"], "legacy_only": True}, *h.routes]
    status, body = await running.reload()
    assert status == 200 and body["status"] == "applied", body
    assert {"legacy.nodes[0].url", "gateway.timeouts.request_ms", "routes"} <= set(body["changed"])

    async def on_b() -> bool:
        return await running.get("/who") == (200, {"node": "b"})
    await await_until(on_b, timeout=5, what="the new legacy node to serve")
    status, _ = await running.get("/slow")
    assert status == 504, "the shorter timeout applies to the next request"
    assert "reports" in running.gateway.admin.routes
    assert (await running.reload())[1]["status"] == "unchanged"


async def test_a_request_in_flight_finishes_on_the_config_it_started_with(running: Running
                                                                          ) -> None:
    h = running.harness
    in_flight = asyncio.create_task(running.get("/slow"))
    await await_until(lambda: _true(running.gateway.in_flight == 1), what="request in flight")
    h.legacy = {"b": running.urls["b"]}
    h.gateway["timeouts"] = {"connect_ms": 500, "request_ms": 100}
    assert (await running.reload())[0] == 200
    assert await in_flight == (200, {"node": "a", "slow": True})


async def test_invalid_or_restart_only_changes_are_refused_and_the_old_config_serves(
        running: Running) -> None:
    h = running.harness
    h.routes[0]["fallbak"] = {}
    status, body = await running.reload()
    assert status == 422 and body["status"] == "invalid"
    assert "routes[0].fallbak: unknown key" in str(body["detail"])
    del h.routes[0]["fallbak"]

    h.legacy = {"b": running.urls["b"]}
    h.key_prefix = "elsewhere"
    status, body = await running.reload()
    assert status == 409 and body["status"] == "needs_restart"
    assert [str(k).split(":")[0] for k in body["needs_restart"]] == ["redis.key_prefix"]

    assert (await running.reload("wrong-token"))[0] == 401
    assert (await running.reload(None))[0] == 401
    assert await running.get("/who") == (200, {"node": "a"}), "nothing was applied"


async def _true(value: bool) -> bool:
    return value
