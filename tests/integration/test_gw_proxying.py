"""The gateway as an HTTP proxy: what reaches the backend, what reaches the client.

A real gateway (in-process, real Redis) in front of a small real aiohttp
backend that records what it received and answers with whatever a test asks.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.harness import GatewayHarness
from tests.support.keys import KeyPair

BIG = bytes(range(256)) * 4096  # 1 MiB: streamed, not buffered


def _backend(seen: list[dict[str, Any]]) -> web.Application:
    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append({"path": request.raw_path, "headers": dict(request.headers),
                     "body_len": len(body), "body_ok": body == BIG if len(body) > 1000 else None})
        if request.path == "/gzip":
            resp = web.Response(body=gzip.compress(b'{"hello": "world"}' * 50))
            resp.headers["Content-Encoding"] = "gzip"
            resp.headers["Content-Type"] = "application/json"
            return resp
        if request.path == "/big":
            stream = web.StreamResponse()
            stream.content_type = "application/octet-stream"
            await stream.prepare(request)
            for i in range(0, len(BIG), 65536):
                await stream.write(BIG[i:i + 65536])
            await stream.write_eof()
            return stream
        resp = web.json_response({"ok": True})
        for name in ("X-Shop-Session-Rev", "X-Strangler-Identity", "X_Shop_Node", "Keep-Alive",
                     "X-Secret-Hop"):
            resp.headers[name] = "leak"
        resp.headers["Connection"] = "X-Secret-Hop"
        resp.headers["X-Backend-Own"] = "kept"
        return resp

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "boot_id": "b1"})

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@pytest.fixture
async def proxy(redis_url: str, key_prefix: str,
                keypair: KeyPair) -> AsyncIterator[tuple[str, list[Any]]]:
    seen: list[dict[str, Any]] = []
    backend = TestServer(_backend(seen), host="127.0.0.1")
    await backend.start_server()
    harness = GatewayHarness(redis_url, key_prefix, keypair,
                             legacy={"a": str(backend.make_url(""))},
                             gateway={"trusted_proxies": ["10.0.0.0/8"]})
    await harness.start()
    try:
        yield harness.url, seen
    finally:
        await harness.stop()
        await backend.close()


async def test_gzip_is_relayed_untouched_with_its_content_encoding(proxy: tuple[str, list[Any]]
                                                                    ) -> None:
    url, _ = proxy
    async with aiohttp.ClientSession(auto_decompress=False) as http, \
            http.get(url + "/gzip", headers={"Accept-Encoding": "gzip"}) as resp:
        raw = await resp.read()
    assert resp.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(raw).decode()[: len('{"hello": "world"}')]) == {
        "hello": "world"}


async def test_large_bodies_stream_both_ways_intact(proxy: tuple[str, list[Any]]) -> None:
    url, seen = proxy
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/big") as resp:
            assert resp.status == 200
            assert await resp.read() == BIG
        async with http.post(url + "/upload", data=BIG) as resp:
            assert resp.status == 200
    upload = seen[-1]
    assert upload["body_len"] == len(BIG) and upload["body_ok"]


async def test_hop_by_hop_and_internal_headers_never_cross(proxy: tuple[str, list[Any]]) -> None:
    url, seen = proxy
    forged = {"X-Strangler-Identity": "forged.jwt", "X_Shop_Session_Rev": "9",
              "X-Internal-Token": "guess", "Connection": "X-Custom-Hop",
              "X-Custom-Hop": "drop me", "X-Forwarded-For": "6.6.6.6",
              "X-Request-Id": "client-trace-12345"}
    async with aiohttp.ClientSession() as http, http.get(url + "/plain", headers=forged) as resp:
        got = resp.headers.copy()
        assert await resp.json() == {"ok": True}
    sent = {k.lower(): v for k, v in seen[-1]["headers"].items()}
    for name in ("x-strangler-identity", "x_shop_session_rev", "x-internal-token",
                 "x-custom-hop"):
        assert name not in sent, name
    assert sent["x-forwarded-for"] == "127.0.0.1", "an untrusted client's XFF is not believed"
    assert sent["x-request-id"] == "client-trace-12345"
    lowered = {k.lower() for k in got}
    for name in ("x-shop-session-rev", "x-strangler-identity", "x_shop_node", "keep-alive",
                 "x-secret-hop"):
        assert name not in lowered, name
    assert got["X-Backend-Own"] == "kept"
    assert got["X-Request-Id"] == "client-trace-12345"


async def test_every_answer_carries_a_request_id_even_a_refusal(proxy: tuple[str, list[Any]]
                                                                 ) -> None:
    url, seen = proxy
    before = len(seen)
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/a/%2Fetc/passwd") as resp:
            assert resp.status == 400
            assert resp.headers["Content-Type"].startswith("application/problem+json")
            assert len(resp.headers["X-Request-Id"]) >= 8
        async with http.get(url + "/api/%2e%2e/admin") as resp:
            assert resp.status == 200
    assert len(seen) == before + 1 and seen[-1]["path"] == "/admin"


async def test_expect_100_continue_is_answered_and_the_body_relayed(
        proxy: tuple[str, list[Any]]) -> None:
    url, seen = proxy
    async with aiohttp.ClientSession() as http, \
            http.post(url + "/upload", data=b"x" * 5000, expect100=True) as resp:
        assert resp.status == 200
    assert seen[-1]["body_len"] == 5000
    assert "expect" not in {k.lower() for k in seen[-1]["headers"]}


async def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()


async def test_the_backend_gets_the_clients_headers_and_none_the_gateway_made_up(
        proxy: tuple[str, list[Any]]) -> None:
    url, seen = proxy
    head = await _raw(url, b"GET /plain HTTP/1.1\r\nHost: shop\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    sent = {k.lower() for k in seen[-1]["headers"]}
    for name in ("accept", "accept-encoding", "user-agent", "content-type"):
        assert name not in sent, f"{name} was added on the way"
    head = await _raw(url, b"POST /plain HTTP/1.1\r\nHost: shop\r\nContent-Length: 3\r\n"
                           b"User-Agent: curl/8\r\nAccept: text/plain\r\n\r\nabc")
    assert head.startswith(b"HTTP/1.1 200")
    sent_headers = {k.lower(): v for k, v in seen[-1]["headers"].items()}
    assert "content-type" not in sent_headers, "a body sent without a type gets none"
    assert sent_headers["user-agent"] == "curl/8" and sent_headers["accept"] == "text/plain"
    assert seen[-1]["body_len"] == 3
