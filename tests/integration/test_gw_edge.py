"""The front door's names and closed rooms (issue 12, parts 4 and 5).

A real gateway (in-process, real Redis) in front of backends that record every
request they get. Hosts: a forged or unlisted Host is refused with 400 and
reaches no backend; a backend is told the validated host in X-Forwarded-Host,
never the client's bytes; the admin listener refuses a name it does not answer
to (a DNS-rebinding page) with 421 and answers its address. Blocked paths: the
monolith's health path and the export hook's namespace are answered 404 by the
gateway itself in every spelling, counted, while the gateway's own health
checks and hook calls still reach the backends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from adapters.wire import INTERNAL_TOKEN_HEADER
from legacy_shop.app import create_app
from legacy_shop.settings import Settings
from tests.support.harness import ADMIN_TOKEN, INTERNAL_TOKEN, GatewayHarness
from tests.support.keys import KeyPair
from tests.support.net import await_until
from tests.support.rawhttp import RawResponse, exchange, request


@dataclass
class Seen:
    path: str
    headers: CIMultiDict[str]

    @property
    def from_client(self) -> bool:
        """Forwarded by the gateway for a client (its own checks carry no X-Forwarded-For)."""
        return "X-Forwarded-For" in self.headers


@dataclass
class Backend:
    """Answers everything with 200, its health path with a node's secrets; records all."""

    name: str
    seen: list[Seen] = field(default_factory=list)

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            self.seen.append(Seen(request.raw_path, CIMultiDict(request.headers)))
            if request.path == "/healthz":
                return web.json_response({"status": "ok", "node": self.name,
                                          "boot_id": "secret-boot"})
            return web.json_response({"backend": self.name})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app

    def forwarded(self) -> list[Seen]:
        return [s for s in self.seen if s.from_client]


@dataclass
class Edge:
    harness: GatewayHarness
    legacy: Backend

    async def raw(self, data: bytes) -> RawResponse:
        return (await exchange("127.0.0.1", self.harness.port, data)).first

    def metric(self, name: str, **labels: str) -> float:
        assert self.harness.instance is not None
        return sum(s.value for f in self.harness.instance.metrics.registry.collect()
                   for s in f.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.fixture
async def edge(request: pytest.FixtureRequest, redis_url: str, key_prefix: str,
               keypair: KeyPair) -> AsyncIterator[Edge]:
    """``@pytest.mark.parametrize("edge", [{gateway overrides}], indirect=True)``."""
    legacy = Backend("legacy-a")
    server = TestServer(legacy.app(), host="127.0.0.1")
    await server.start_server()
    harness = GatewayHarness(redis_url, key_prefix, keypair,
                             legacy={"a": str(server.make_url(""))},
                             gateway=getattr(request, "param", {}))
    await harness.start()
    try:
        yield Edge(harness, legacy)
    finally:
        await harness.stop()
        await server.close()


LISTED = {"public_hosts": ["shop.example", "*.shop.example"]}
DEFAULTED = {"public_hosts": ["shop.example"], "default_host": "shop.example"}


def _head(*lines: str) -> bytes:
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"


FORGED: dict[str, bytes] = {
    "space": request("GET", "/page", host="evil.example foo"),
    "comma": request("GET", "/page", host="a,b"),
    "userinfo": request("GET", "/page", host="user@shop.example"),
    "empty": request("GET", "/page", host=""),
    "over_long_label": request("GET", "/page", host="a" * 300),
    "over_long_name": request("GET", "/page", host=("a" * 60 + ".") * 5 + "example"),
    "percent": request("GET", "/page", host="sh%6fp.example"),
    "bad_port": request("GET", "/page", host="shop.example:99999"),
    "two_hosts": _head("GET /page HTTP/1.1", "Host: shop.example", "Host: evil.example"),
    "no_host": _head("GET /page HTTP/1.1"),
}
BY_PARSER = {"two_hosts", "no_host"}
"""aiohttp's parser refuses these itself (its own 400), before the gateway's check."""


# ================================================================ hosts


@pytest.mark.parametrize("edge", [{}, LISTED, DEFAULTED], indirect=True,
                         ids=["any-host", "listed", "defaulted"])
@pytest.mark.parametrize("name", list(FORGED))
async def test_a_malformed_host_is_400_and_reaches_no_backend(edge: Edge, name: str) -> None:
    resp = await edge.raw(FORGED[name])
    assert resp.status == 400, resp
    if name not in BY_PARSER:
        assert resp.headers["Content-Type"].startswith("application/problem+json")
        assert json.loads(resp.body)["title"] == "bad_host"
        assert edge.metric("strangler_host_refused_total", listener="public",
                           reason="bad_host") == 1
    assert edge.legacy.forwarded() == []


@pytest.mark.parametrize("edge", [LISTED], indirect=True)
@pytest.mark.parametrize("host", ["evil.example", "shop.example.evil.example", "shop.exampl",
                                  "10.0.0.1", "localhost"])
async def test_a_valid_host_not_listed_is_400_and_reaches_no_backend(edge: Edge,
                                                                       host: str) -> None:
    resp = await edge.raw(request("GET", "/page", host=host))
    assert resp.status == 400, resp
    assert json.loads(resp.body)["title"] == "unknown_host"
    assert edge.metric("strangler_host_refused_total", listener="public",
                       reason="unknown_host") == 1
    assert edge.legacy.forwarded() == []


FORGED_FORWARDING = [("X-Forwarded-Host", "evil.example"), ("X_Forwarded_Host", "evil.example"),
                     ("x-forwarded-host", "evil.example")]


@pytest.mark.parametrize("edge", [LISTED], indirect=True)
@pytest.mark.parametrize(("host", "told"), [
    ("shop.example", "shop.example"), ("SHOP.Example.:8080", "shop.example:8080"),
    ("www.shop.example", "www.shop.example"), ("a.b.shop.example:443", "a.b.shop.example:443"),
])
async def test_the_backend_is_told_the_validated_host_and_nothing_else(edge: Edge, host: str,
                                                                        told: str) -> None:
    resp = await edge.raw(request("GET", "/page", FORGED_FORWARDING, host=host))
    assert resp.status == 200, resp
    [seen] = edge.legacy.forwarded()
    assert seen.headers.getall("X-Forwarded-Host") == [told]
    assert not any(n.lower() == "x_forwarded_host" for n in seen.headers)


@pytest.mark.parametrize("edge", [DEFAULTED], indirect=True)
async def test_a_default_host_stands_in_for_an_unlisted_one(edge: Edge) -> None:
    assert (await edge.raw(request("GET", "/a", FORGED_FORWARDING,
                                   host="evil.example"))).status == 200
    assert (await edge.raw(_head("GET /b HTTP/1.0"))).status == 200  # HTTP/1.0, no Host
    assert [s.headers.getall("X-Forwarded-Host") for s in edge.legacy.forwarded()] == [
        ["shop.example"], ["shop.example"]]


async def test_without_a_list_any_valid_host_is_served_as_before(edge: Edge) -> None:
    assert (await edge.raw(request("GET", "/a", FORGED_FORWARDING,
                                   host="Gw.Test:81"))).status == 200
    assert (await edge.raw(_head("GET /b HTTP/1.0"))).status == 200
    a, b = edge.legacy.forwarded()
    assert a.headers.getall("X-Forwarded-Host") == ["gw.test:81"]
    assert "X-Forwarded-Host" not in b.headers  # none named: none invented


# ================================================================ the admin listener

ADMIN_READS = ["/api/routes", "/readyz", "/healthz", "/metrics", "/", "/api/stats",
               "/.well-known/jwks.json", "/api/explain?path=/x", "/api/ledger", "/nowhere"]


async def _admin(edge: Edge, method: str, path: str, host: str,
                 **kw: Any) -> tuple[int, bytes]:
    headers = {"Host": host, **kw.pop("headers", {})}
    async with aiohttp.ClientSession() as http, http.request(
            method, edge.harness.admin_url + path, headers=headers, **kw) as resp:
        return resp.status, await resp.read()


@pytest.mark.parametrize("path", ADMIN_READS)
async def test_the_admin_listener_refuses_a_rebinding_page_and_answers_its_address(
        edge: Edge, path: str) -> None:
    port = edge.harness.admin_port
    status, body = await _admin(edge, "GET", path, f"attacker.example:{port}")
    assert status == 421, body
    assert json.loads(body)["error"] == "unknown_host"
    assert b"default" not in body and b"legacy" not in body  # no route, node or figure
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1"):
        status, body = await _admin(edge, "GET", path, host)
        assert status != 421 and status != 400, (host, status, body)
    assert edge.metric("strangler_host_refused_total", listener="admin",
                       reason="unknown_host") == 1


async def test_the_admin_listener_refuses_a_change_from_a_rebinding_page(edge: Edge) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    status, _ = await _admin(edge, "PUT", "/api/kill-switch", "attacker.example",
                             json={"on": True}, headers=auth)
    assert status == 421
    assert (await _admin(edge, "GET", "/api/kill-switch", "127.0.0.1"))[1] == b'{"on": false}'
    assert (await _admin(edge, "GET", "/healthz", "a b"))[0] == 400


@pytest.mark.parametrize("edge", [{"admin_hosts": ["ops.example"]}], indirect=True)
async def test_admin_hosts_names_the_listener_answers(edge: Edge) -> None:
    assert (await _admin(edge, "GET", "/healthz", "ops.example:1"))[0] == 200
    assert (await _admin(edge, "GET", "/healthz", "localhost"))[0] == 421  # replaced
    assert (await _admin(edge, "GET", "/healthz", "10.9.8.7"))[0] == 200  # addresses: always


# ================================================================ blocked paths

BLOCKED = {"/healthz": "/healthz", "/healthz/": "/healthz", "/HEALTHZ": "/healthz",
           "//healthz": "/healthz", "/%68ealthz?x=1": "/healthz", "/a/../healthz": "/healthz",
           "/_internal/sessions/abc": "/_internal/*", "/%5Finternal/sessions/abc": "/_internal/*",
           "/%5finternal": "/_internal/*", "/_INTERNAL/x/": "/_internal/*",
           "//_internal//sessions/abc": "/_internal/*"}


@pytest.mark.parametrize("raw", list(BLOCKED))
async def test_a_blocked_path_is_404_from_the_gateway_in_every_spelling(edge: Edge,
                                                                         raw: str) -> None:
    resp = await edge.raw(request("GET", raw, [(INTERNAL_TOKEN_HEADER, INTERNAL_TOKEN)]))
    assert resp.status == 404, resp
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    problem = json.loads(resp.body)
    assert problem["title"] == "blocked_path" and "boot" not in resp.body.decode()
    assert edge.legacy.forwarded() == [], "a blocked path reached the backend"
    assert edge.metric("strangler_blocked_requests_total", pattern=BLOCKED[raw]) == 1
    resp = await edge.raw(request("GET", "/healthzz"))  # the control: the neighbour passes
    assert resp.status == 200 and [s.path for s in edge.legacy.forwarded()] == ["/healthzz"]


async def test_the_gateways_own_health_checks_still_reach_the_health_path(edge: Edge) -> None:
    async def checked() -> bool:
        return sum(s.path == "/healthz" and not s.from_client for s in edge.legacy.seen) >= 2
    await await_until(checked, timeout=5, what="two health checks of the legacy node")
    assert edge.harness.instance is not None
    assert edge.harness.instance.legacy.healthy


async def test_explain_says_blocked_as_the_pipeline_does(edge: Edge) -> None:
    status, body = await _admin(edge, "GET", "/api/explain?path=/HEALTHZ/", "127.0.0.1")
    assert status == 200
    assert json.loads(body)["reason"] == "blocked_path"


@pytest.mark.parametrize("edge", [{"blocked_paths": ["/ops/*"]}], indirect=True)
async def test_a_configured_list_replaces_the_default_and_a_reload_swaps_it(edge: Edge) -> None:
    assert (await edge.raw(request("GET", "/Ops/x"))).status == 404
    assert (await edge.raw(request("GET", "/healthz"))).status == 200  # said so: exposed
    instance = edge.harness.instance
    assert instance is not None
    edge.harness.gateway = {"blocked_paths": ["/healthz"], "admin_hosts": ["ops.example"]}
    instance.apply(edge.harness.config())
    assert (await edge.raw(request("GET", "/ops/x"))).status == 200
    assert (await edge.raw(request("GET", "/healthz/"))).status == 404
    assert (await _admin(edge, "GET", "/healthz", "ops.example"))[0] == 200
    assert [s.path for s in edge.legacy.forwarded()] == ["/healthz", "/ops/x"]


async def test_the_hook_still_works_behind_a_blocked_namespace(
        tmp_path: Path, redis_url: str, key_prefix: str, keypair: KeyPair) -> None:
    """A real monolith: a login is pulled through its hook; a client at the hook is 404."""
    hook_calls: list[str] = []

    @web.middleware
    async def record(req: web.Request, handler: Any) -> web.StreamResponse:
        if req.path.startswith("/_internal/"):
            hook_calls.append(f"{req.method} {req.path} {'X-Forwarded-For' in req.headers}")
        return await handler(req)  # type: ignore[no-any-return]

    node = create_app(Settings(node_id="a", database_url=f"sqlite+aiosqlite:///{tmp_path}/s.db",
                               internal_token=INTERNAL_TOKEN))
    node.middlewares.insert(0, record)
    server = TestServer(node, host="127.0.0.1")
    await server.start_server()
    harness = await GatewayHarness(redis_url, key_prefix, keypair,
                                   legacy={"a": str(server.make_url(""))}).start()
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            async with http.post(harness.url + "/login",
                                 json={"username": "alice", "password": "wonderland"}) as resp:
                assert resp.status == 200
            sid = next(c.value for c in jar if c.key == "shop_session")
            async with http.get(harness.url + "/api/me") as resp:
                assert resp.status == 200
                assert (await resp.json())["user"]["username"] == "alice"
            async with http.get(harness.url + f"/_internal/sessions/{sid}",
                                headers={INTERNAL_TOKEN_HEADER: INTERNAL_TOKEN}) as resp:
                assert resp.status == 404
                assert "alice" not in await resp.text()
    finally:
        await harness.stop()
        await server.close()
    assert hook_calls, "the gateway never called the hook"
    assert all(call.endswith(" False") for call in hook_calls), hook_calls
