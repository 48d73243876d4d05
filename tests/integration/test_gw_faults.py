"""Faults injected for real between the gateway and its backends.

A real gateway (in-process, real Redis) in front of two small real aiohttp
backends, legacy and new, each recording what it was asked. A ``FaultProxy``
sits in front of each; a test switches one to a fault and checks what the
user would see and what each backend really did: a safe request falls back
to legacy, a POST that reached new is never replayed, a body cut short is
never passed off as complete, a client that leaves frees the upstream, and
the route's breaker opens and closes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.routing.breaker import State
from gateway.routing.fallback import STORE_NOT_SHARED, WRITE_MAY_HAVE_REACHED_NEW
from gateway.runtime.app import Gateway
from tests.support.faultproxy import NOT_HTTP, Fault, FaultProxy, Mode
from tests.support.harness import GatewayHarness
from tests.support.keys import KeyPair
from tests.support.net import await_until

SMALL = bytes(range(256)) * 400  # 100 KiB: the gateway reads it whole before answering
BIG = bytes(range(256)) * 2048  # 512 KiB: past the 256 KiB read-whole limit, streamed
CUT = 128 * 1024
CLIENT_PATIENCE_S = 5.0
"""Far above any answer here (0.5 s upstream timeout): a hang fails, it does not stall."""


@dataclass
class Recorded:
    method: str
    path: str
    body: bytes
    key: str | None


class Backend:
    """A real backend that records every request but its health checks."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[Recorded] = []
        self.status = 200
        """What its JSON answers carry: a test sets 503 to make it fail."""
        app = web.Application()
        app.router.add_get("/healthz", self._health)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self.server = TestServer(app, host="127.0.0.1")

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "boot_id": self.name})

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Recorded(request.method, request.path, body,
                                  request.headers.get("Idempotency-Key")))
        if request.path == "/api/small":
            return web.Response(body=SMALL, content_type="application/octet-stream")
        if request.path == "/api/big":
            return web.Response(body=BIG, content_type="application/octet-stream")
        if request.path == "/api/chunked":
            stream = web.StreamResponse()
            await stream.prepare(request)
            for i in range(0, len(BIG), 65536):
                await stream.write(BIG[i:i + 65536])
            await stream.write_eof()
            return stream
        return web.json_response({"served_by": self.name, "method": request.method,
                                  "path": request.path, "body": body.decode()},
                                 status=self.status)

    def calls(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.seen if method is None or r.method == method]


@dataclass
class Env:
    harness: GatewayHarness
    legacy: Backend
    new: Backend
    legacy_proxy: FaultProxy
    new_proxy: FaultProxy
    http: aiohttp.ClientSession = field(default_factory=lambda: aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=CLIENT_PATIENCE_S)))

    @property
    def url(self) -> str:
        return self.harness.url

    @property
    def gateway(self) -> Gateway:
        assert self.harness.instance is not None
        return self.harness.instance

    def metric(self, name: str, **labels: str) -> float:
        value = self.gateway.metrics.registry.get_sample_value(name, labels)
        return value or 0.0

    def fallbacks(self, reason: str) -> float:
        return self.metric("strangler_fallbacks_total", route="api", reason=reason)

    def refused(self, reason: str) -> float:
        return self.metric("strangler_fallbacks_refused_total", route="api", reason=reason)


Start = Callable[..., Awaitable[Env]]


@pytest.fixture
async def start_env(redis_url: str, key_prefix: str, keypair: KeyPair,
                    redis_client: aioredis.Redis) -> AsyncIterator[Start]:
    """Start backends, proxies and a gateway; the route ``api`` (``/api/*``) is at ``new``.

    (``redis_client`` is here for its teardown: it deletes this test's keys.)
    """
    async with contextlib.AsyncExitStack() as stack:

        async def start(*, request_ms: int = 500, health_ms: int = 200,
                        breaker: dict[str, int] | None = None,
                        fallback: dict[str, Any] | None = None) -> Env:
            legacy, new = Backend("legacy"), Backend("new")
            proxies = []
            for backend in (legacy, new):
                await backend.server.start_server()
                stack.push_async_callback(backend.server.close)
                proxy = await FaultProxy(backend.server.port or 0).start()
                stack.push_async_callback(proxy.stop)
                proxies.append(proxy)
            api: dict[str, Any] = {
                "name": "api", "paths": ["/api/*"], "stage": "new",
                # Out of the way unless a test is about them: the breaker, and the
                # retry budget (tests/integration/test_gw_outage_budget.py owns that).
                "breaker": breaker or {"failures": 1000, "cooldown_ms": 60_000},
                "retry_budget": {"ratio": 1.0, "min_retries": 1000},
            }
            if fallback is not None:
                api["fallback"] = fallback
            harness = GatewayHarness(
                redis_url, key_prefix, keypair, legacy={"a": proxies[0].url},
                routes=[api, {"name": "default", "paths": ["/*"], "legacy_only": True}],
                gateway={"timeouts": {"connect_ms": 500, "request_ms": request_ms}},
                extra={"new": {"instances": [{"id": "n1", "url": proxies[1].url}],
                               "ejection": {"consecutive_failures": 1000}},
                       "health": {"interval_ms": health_ms}})
            await harness.start()
            stack.push_async_callback(harness.stop)
            env = Env(harness, legacy, new, proxies[0], proxies[1])
            stack.push_async_callback(env.http.close)
            return env

        yield start


@pytest.fixture
async def env(start_env: Start) -> Env:
    return await start_env()


def _backend(resp: aiohttp.ClientResponse) -> str:
    return resp.headers.get("X-Strangler-Backend", "").split(":")[0]


async def _problem(resp: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    """Check a problem+json answer of ``status`` that names its request id."""
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = await resp.json(content_type=None)
    assert body["status"] == status
    assert len(resp.headers["X-Request-Id"]) >= 8
    assert body["request_id"] == resp.headers["X-Request-Id"]
    return body


# ---------------------------------------------------------------- safe requests fall back

GET_FAULTS: dict[str, tuple[Fault, str, str | None, bool]] = {
    # name: (fault before new, path, fallback reason counted, did new's backend see it)
    "refused": (Fault(Mode.REFUSE), "/api/thing", None, False),
    "reset_before_response": (Fault(Mode.RESET_BEFORE_RESPONSE), "/api/thing", "new_reset",
                              False),
    "forward_then_reset": (Fault(Mode.FORWARD_THEN_RESET), "/api/thing", "new_reset", True),
    "slow_headers": (Fault(Mode.SLOW_HEADERS, delay=5.0), "/api/thing", "new_timeout", True),
    "5xx": (Fault(), "/api/thing", "new_5xx", True),  # new's backend answers 503
    "garbage_after_status": (Fault(Mode.GARBAGE), "/api/thing", "new_protocol", False),
    "not_http": (Fault(Mode.GARBAGE, garbage=NOT_HTTP), "/api/thing", "new_protocol", False),
    "small_body_cut": (Fault(Mode.CLOSE_MID_BODY), "/api/small", "new_reset", True),
}


@pytest.mark.parametrize("case", GET_FAULTS, ids=str)
async def test_a_get_that_fails_on_new_gets_legacys_answer(env: Env, case: str) -> None:
    fault, path, reason, new_acted = GET_FAULTS[case]
    env.new.status = 503 if case == "5xx" else 200
    await env.new_proxy.apply(fault)
    async with env.http.get(env.url + path) as resp:
        raw = await resp.read()
        assert resp.status == 200, raw
        assert _backend(resp) == "legacy"
    if path == "/api/small":
        assert raw == SMALL, "legacy's whole body, not new's first half"
    else:
        assert json.loads(raw)["served_by"] == "legacy"
    assert [r.path for r in env.legacy.calls("GET")] == [path]
    if reason is None:  # refused: nothing reached new, however the gateway noticed
        assert env.new_proxy.hits == 0 and env.new.seen == []
    else:
        assert env.new_proxy.hits >= 1
        assert env.fallbacks(reason) == 1
        assert bool(env.new.seen) is new_acted
    await _pool_settles(env)


# ---------------------------------------------------------------- unsafe requests

POST_FAULTS: dict[str, tuple[Fault, str, int, int]] = {
    # name: (fault before new, path, status the client gets, POSTs new's backend got)
    "reset_before_response": (Fault(Mode.RESET_BEFORE_RESPONSE), "/api/orders", 502, 0),
    "forward_then_reset": (Fault(Mode.FORWARD_THEN_RESET), "/api/orders", 502, 1),
    "slow_headers": (Fault(Mode.SLOW_HEADERS, delay=5.0), "/api/orders", 504, 1),
    "small_body_cut": (Fault(Mode.CLOSE_MID_BODY), "/api/small", 502, 1),
}


@pytest.mark.parametrize("case", POST_FAULTS, ids=str)
async def test_a_post_without_key_that_reached_new_is_not_replayed_on_legacy(
        env: Env, case: str) -> None:
    fault, path, status, new_posts = POST_FAULTS[case]
    await env.new_proxy.apply(fault)
    async with env.http.post(env.url + path, json={"qty": 1}) as resp:
        await _problem(resp, status)
    assert env.legacy.calls("POST") == [], "legacy must not place what new may have placed"
    assert env.new_proxy.hits == 1, "not retried on new either"
    assert len(env.new.calls("POST")) == new_posts
    assert env.refused(WRITE_MAY_HAVE_REACHED_NEW) == 1
    await _pool_settles(env)


@pytest.mark.parametrize("key", [None, "order-3"])
@pytest.mark.parametrize("shared", [False, True], ids=["store_not_shared", "store_shared"])
async def test_a_post_refused_by_new_never_reached_it_and_is_served_by_legacy(
        start_env: Start, shared: bool, key: str | None) -> None:
    # Refused: provably never reached new. Whatever the store, legacy is the first to act.
    env = await start_env(fallback={"shared_idempotency_store": shared})
    await env.new_proxy.set(Mode.REFUSE)
    headers = {"Idempotency-Key": key} if key else None
    async with env.http.post(env.url + "/api/orders", json={"qty": 1}, headers=headers) as resp:
        assert resp.status == 200 and _backend(resp) == "legacy"
        assert (await resp.json())["served_by"] == "legacy"
    assert [(r.path, r.body, r.key) for r in env.legacy.calls("POST")] == [
        ("/api/orders", b'{"qty": 1}', key)]
    assert env.new_proxy.hits == 0 and env.new.seen == []


KEYED_FAULTS: dict[str, tuple[Fault, int, str]] = {
    # name: (fault before new, status the client gets unless replayed, failure kind)
    "forward_then_reset": (Fault(Mode.FORWARD_THEN_RESET), 502, "reset"),
    "5xx": (Fault(), 503, "5xx"),  # new's backend answers 503: new's answer is passed on
}


@pytest.mark.parametrize("case", KEYED_FAULTS, ids=str)
async def test_a_keyed_post_that_reached_new_is_replayed_on_legacy_with_the_same_key(
        start_env: Start, case: str) -> None:
    env = await start_env(fallback={"shared_idempotency_store": True})
    fault, _, kind = KEYED_FAULTS[case]
    env.new.status = 503 if case == "5xx" else 200
    await env.new_proxy.apply(fault)
    headers = {"Idempotency-Key": "order-7"}
    async with env.http.post(env.url + "/api/orders", json={"qty": 2},
                             headers=headers) as resp:
        assert resp.status == 200 and _backend(resp) == "legacy"
    sent = [(r.key, r.body) for r in env.new.calls("POST")]
    assert sent == [("order-7", b'{"qty": 2}')], "new acted once"
    assert [(r.key, r.body) for r in env.legacy.calls("POST")] == sent, \
        "legacy got the same key and body, so the shared key store can replay"
    assert env.fallbacks(f"new_{kind}_idempotency_key") == 1
    await _pool_settles(env)


@pytest.mark.parametrize("case", KEYED_FAULTS, ids=str)
@pytest.mark.parametrize("said", [False, None], ids=["store_not_shared", "unsaid"])
async def test_a_keyed_post_that_reached_new_is_not_replayed_unless_the_store_is_shared(
        start_env: Start, case: str, said: bool | None) -> None:
    # Nothing says legacy would find the key new recorded: a replay could act twice.
    env = await start_env(fallback=None if said is None else {"shared_idempotency_store": said})
    fault, status, _ = KEYED_FAULTS[case]
    env.new.status = 503 if case == "5xx" else 200
    await env.new_proxy.apply(fault)
    async with env.http.post(env.url + "/api/orders", json={"qty": 2},
                             headers={"Idempotency-Key": "order-8"}) as resp:
        assert resp.status == status, await resp.text()
        if case == "5xx":
            assert _backend(resp) == "new", "new's own answer, not a replay"
        else:
            await _problem(resp, status)
    assert [(r.key, r.body) for r in env.new.calls("POST")] == [("order-8", b'{"qty": 2}')]
    assert env.legacy.calls("POST") == [], "legacy must not act on what new may have done"
    assert env.refused(STORE_NOT_SHARED) == 1
    assert env.fallbacks("new_reset_idempotency_key") == env.fallbacks(
        "new_5xx_idempotency_key") == 0
    await _pool_settles(env)


# ---------------------------------------------------------------- bodies cut short

@pytest.mark.parametrize("path", ["/api/big", "/api/chunked"])
async def test_a_streamed_body_cut_mid_way_reaches_the_client_aborted(env: Env,
                                                                       path: str) -> None:
    await env.new_proxy.set(Mode.CLOSE_MID_BODY, cut_after=CUT)
    with pytest.raises(aiohttp.ClientPayloadError):
        async with env.http.get(env.url + path) as resp:
            assert resp.status == 200 and _backend(resp) == "new"  # headers went out first
            await resp.read()

    head, body = await _raw_get(env.url, path)
    assert head.startswith(b"HTTP/1.1 200")
    if path == "/api/big":
        assert b"content-length: %d" % len(BIG) in head.lower()
        assert len(body) < len(BIG), "shorter than its Content-Length: visibly aborted"
    else:
        assert not body.endswith(b"0\r\n\r\n"), "no last chunk: visibly aborted"
    assert env.legacy.seen == [], "headers were out: no fallback once the client saw them"
    await _pool_settles(env)


async def test_a_body_that_stalls_past_the_read_timeout_is_aborted(env: Env) -> None:
    await env.new_proxy.set(Mode.SLOW_BODY, trickle_bytes=CUT, trickle_interval=30.0)
    with pytest.raises(aiohttp.ClientPayloadError):
        async with env.http.get(env.url + "/api/big") as resp:
            assert resp.status == 200
            await resp.read()
    await await_until(_async(lambda: env.new_proxy.requests[0].outcome == "client_gone"),
                      timeout=5, what="the gateway giving up on the stalled upstream")
    assert env.legacy.seen == []


async def test_a_slow_but_steady_body_is_relayed_whole(env: Env) -> None:
    # each piece arrives well within the read timeout: slow is not broken
    await env.new_proxy.set(Mode.SLOW_BODY, trickle_bytes=64 * 1024, trickle_interval=0.02)
    for path in ("/api/small", "/api/big"):
        async with env.http.get(env.url + path) as resp:
            assert resp.status == 200 and _backend(resp) == "new"
            assert await resp.read() == (SMALL if path == "/api/small" else BIG)
    assert env.legacy.seen == []


async def test_a_small_body_dripped_past_the_request_timeout_falls_back_to_legacy(
        env: Env) -> None:
    # 100 KiB, 4 KiB every 0.25 s: every read within the 0.5 s timeout, the whole over 6 s
    await env.new_proxy.set(Mode.SLOW_BODY, trickle_bytes=4096, trickle_interval=0.25)
    started = time.monotonic()
    async with env.http.get(env.url + "/api/small",
                            timeout=aiohttp.ClientTimeout(total=2.0)) as resp:
        assert resp.status == 200 and _backend(resp) == "legacy"
        assert await resp.read() == SMALL
    assert time.monotonic() - started < 2.0


async def test_streamed_bodies_cut_mid_way_open_the_breaker(start_env: Start) -> None:
    env = await start_env(breaker={"failures": 3, "cooldown_ms": 60_000})
    await env.new_proxy.set(Mode.CLOSE_MID_BODY, cut_after=CUT)
    for _ in range(3):
        with pytest.raises(aiohttp.ClientPayloadError):
            async with env.http.get(env.url + "/api/big") as resp:
                await resp.read()
    assert _breaker(env) is State.OPEN
    async with env.http.get(env.url + "/api/big") as resp:
        assert _backend(resp) == "legacy" and await resp.read() == BIG


# ---------------------------------------------------------------- garbage

@pytest.mark.parametrize("garbage", [Fault().garbage, NOT_HTTP], ids=["after_status", "not_http"])
async def test_garbage_from_new_on_a_post_is_a_502_problem(env: Env, garbage: bytes) -> None:
    await env.new_proxy.set(Mode.GARBAGE, garbage=garbage)
    async with env.http.post(env.url + "/api/orders", json={}) as resp:
        body = await _problem(resp, 502)
    assert body["title"] == "bad_gateway"
    assert env.legacy.calls("POST") == []


async def test_garbage_from_legacy_is_a_502_problem(env: Env) -> None:
    await env.legacy_proxy.set(Mode.GARBAGE)
    async with env.http.get(env.url + "/plain", headers={"X-Request-Id": "trace-garbage-1"}
                            ) as resp:
        body = await _problem(resp, 502)
    assert body["request_id"] == "trace-garbage-1"
    assert env.legacy_proxy.hits == 1


# ---------------------------------------------------------------- client goes away

def _in_use(gateway: Gateway) -> int:
    """Upstream connections the gateway's pools have handed out and not taken back."""
    return gateway.held.clients.in_use()


@pytest.mark.parametrize("fault", [Fault(Mode.SLOW_HEADERS, delay=60.0),
                                   Fault(Mode.SLOW_BODY, trickle_bytes=4096,
                                         trickle_interval=0.1)],
                         ids=["slow_headers", "slow_body"])
async def test_a_client_that_leaves_cancels_the_upstream_request(start_env: Start,
                                                                  fault: Fault) -> None:
    # A long upstream timeout and no periodic health checks: only the client's
    # leaving can end the upstream request, and the pool's baseline is zero.
    env = await start_env(request_ms=30_000, health_ms=600_000)
    await await_until(_async(lambda: _in_use(env.gateway) == 0), timeout=5,
                      what="an idle pool")
    await env.new_proxy.apply(fault)
    reader, writer = await asyncio.open_connection("127.0.0.1", env.harness.port)
    writer.write(b"GET /api/big HTTP/1.1\r\nHost: shop\r\n\r\n")
    await writer.drain()
    if fault.mode is Mode.SLOW_BODY:  # the gateway is relaying: headers are out
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    await await_until(_async(lambda: env.new_proxy.hits == 1 and _in_use(env.gateway) == 1),
                      timeout=5, what="the request held at the proxy")

    writer.close()  # the user closes the tab
    await writer.wait_closed()

    await await_until(_async(lambda: env.new_proxy.requests[0].outcome == "client_gone"),
                      timeout=5, what="the gateway closing its upstream connection")
    await await_until(_async(lambda: _in_use(env.gateway) == 0), timeout=5,
                      what="the pool back at its baseline")
    assert env.legacy.seen == []


# ---------------------------------------------------------------- circuit breaker

async def test_the_breaker_opens_on_repeated_failures_and_one_probe_closes_it(
        start_env: Start) -> None:
    cooldown = 0.8
    env = await start_env(request_ms=2000,
                          breaker={"failures": 3, "cooldown_ms": int(cooldown * 1000)})
    await env.new_proxy.set(Mode.RESET_BEFORE_RESPONSE)
    for _ in range(3):
        assert await _get(env) == "legacy"  # each one a fallback after a reset on new
    assert _breaker(env) is State.OPEN
    opened_at = time.monotonic()
    reached = env.new_proxy.hits

    for _ in range(5):
        assert await _get(env) == "legacy"
    assert env.new_proxy.hits == reached, "an open breaker sends nothing to new"
    assert env.fallbacks("new_reset") == 3

    # new is healthy again but slow, so the probe is in flight while others arrive
    await env.new_proxy.set(Mode.SLOW_HEADERS, delay=0.3)
    # A deadline on the breaker's own monotonic clock, not a guess.
    await asyncio.sleep(max(0.0, opened_at + cooldown - time.monotonic()) + 0.05)
    probe = asyncio.create_task(_get(env))
    await await_until(_async(lambda: env.new_proxy.hits == reached + 1), timeout=5,
                      what="the half-open probe at new")
    assert _breaker(env) is State.HALF_OPEN
    assert await asyncio.gather(*(_get(env) for _ in range(3))) == ["legacy"] * 3
    assert env.new_proxy.hits == reached + 1, "exactly one probe while half-open"
    assert await probe == "new"
    assert _breaker(env) is State.CLOSED

    await env.new_proxy.set(Mode.PASS)
    assert [await _get(env) for _ in range(3)] == ["new"] * 3
    assert env.new_proxy.hits == reached + 4


# ---------------------------------------------------------------- helpers

async def _get(env: Env, path: str = "/api/thing") -> str:
    async with env.http.get(env.url + path) as resp:
        assert resp.status == 200, await resp.text()
        await resp.read()
        return _backend(resp)


async def _pool_settles(env: Env) -> None:
    """No upstream connection stays checked out once the faulty exchange is over."""
    await await_until(_async(lambda: _in_use(env.gateway) == 0), timeout=5,
                      what="the gateway's upstream pool back at its baseline")


def _breaker(env: Env) -> State:
    return env.gateway.breakers["api"].state


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()
    return run


async def _raw_get(base: str, path: str) -> tuple[bytes, bytes]:
    """GET over a bare socket, read to EOF: (head, every body byte that came)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = b""
        async with asyncio.timeout(CLIENT_PATIENCE_S):
            with contextlib.suppress(ConnectionResetError):
                while chunk := await reader.read(65536):
                    data += chunk
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body
