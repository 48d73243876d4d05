"""The screen stage (gateway/pipeline/screen.py), driven through the real pipeline: what is
refused before any backend is asked, the path a backend is sent, the body it gets, and
the headers it sees."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.edge.http import Incoming
from tests.support.memory_gateway import (
    HOST,
    RID,
    Body,
    MemoryGateway,
    gateway,
    memory_gateway,
    request,
    route,
    title,
)

LIMIT, BUFFERED = 1000, 100
SCREENED = gateway(public_hosts=[HOST, f"*.{HOST}"], trusted_proxies=["10.0.0.0/8"],
                   limits={"max_body_bytes": LIMIT, "buffer_body_bytes": BUFFERED})


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[MemoryGateway]:
    async with memory_gateway(tmp_path, SCREENED) as gw:
        yield gw


@pytest.mark.parametrize("headers", [
    [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
    [("Content-Length", "5"), ("Content-Length", "5")],
    [("Content-Length", "+5")],
    [("Transfer-Encoding", "Chunked")],
], ids=["cl-and-te", "two-cl", "cl-not-a-number", "te-not-exactly-chunked"])
async def test_smuggling_shapes_are_refused_with_the_body_unread(
        gw: MemoryGateway, headers: list[tuple[str, str]]) -> None:
    body = Body(b"hello")
    reply = await gw.send(request("POST", "/api/cart", headers, body=body))
    assert (reply.status, title(reply)) == (400, "bad_header")
    assert body.reads == 0 and gw.received() == []


@pytest.mark.parametrize(("incoming", "code"), [
    (request(host=None), "bad_host"),
    (request(host="shop.test, evil.test"), "bad_host"),
    (request(host="user@shop.test"), "bad_host"),
    (request(headers=[("Host", "shop.test")]), "bad_host"),  # a second Host line
    (request(host="evil.test"), "unknown_host"),
    (request(host="shop.test.evil.test"), "unknown_host"),
], ids=["none", "two-names", "userinfo", "two-lines", "unlisted", "lookalike"])
async def test_a_bad_or_unknown_host_is_refused_and_counted(
        gw: MemoryGateway, incoming: Incoming, code: str) -> None:
    reply = await gw.send(incoming)
    assert (reply.status, title(reply)) == (400, code)
    assert gw.received() == []
    assert gw.count("strangler_host_refused_total", listener="public", reason=code) == 1


async def test_a_listed_host_is_what_the_backend_is_told_normalised(gw: MemoryGateway) -> None:
    reply = await gw.send(request(host="WWW.Shop.Test.:8443"))
    assert reply.status == 200
    [sent] = gw.received()
    assert sent.headers["X-Forwarded-Host"] == "www.shop.test:8443"


async def test_an_unlisted_host_is_taken_as_the_default_host_when_one_is_set(
        tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, SCREENED, gateway(default_host=HOST)) as gw:
        assert (await gw.send(request(host="evil.test"))).status == 200
        assert (await gw.send(request(host=None, version=(1, 0)))).status == 200
        assert [r.headers["X-Forwarded-Host"] for r in gw.received()] == [HOST, HOST]


@pytest.mark.parametrize(("target", "forwarded"), [
    ("/api/products/../cart", "/api/cart"),
    ("/api/products/%2e%2E/cart", "/api/cart"),
    ("/api//products/./../cart/", "/api/cart/"),
    ("/api/%63art?next=%2Fhome&q=a+b", "/api/cart?next=%2Fhome&q=a+b"),
])
async def test_the_route_is_chosen_and_the_backend_sent_the_canonical_path(
        gw: MemoryGateway, target: str, forwarded: str) -> None:
    # POST: catalog (/api/products) would answer 405; cart, the canonical path's route, takes it
    reply = await gw.send(request("POST", target))
    assert reply.status == 200
    assert [r.target for r in gw.received()] == [forwarded]
    assert gw.count("strangler_requests_total", route="cart", backend="legacy",
                    status="200") == 1


@pytest.mark.parametrize(("target", "status", "code"), [
    ("/api/cart%2Fitems", 400, "bad_path"),
    ("/api/cart%5C..%5Ccheckout", 400, "bad_path"),
    ("/api/cart\\items", 400, "bad_path"),
    ("/api/cart;jsessionid=1", 400, "bad_path"),
    ("/api/cart%00", 400, "bad_path"),
    ("/api/cart#x", 400, "bad_path"),
    ("/api/%ff", 400, "bad_path"),
    ("/" + "a" * 9000, 414, "uri_too_long"),
])
async def test_a_path_that_cannot_be_made_canonical_is_refused(
        gw: MemoryGateway, target: str, status: int, code: str) -> None:
    reply = await gw.send(request("GET", target))
    assert (reply.status, title(reply)) == (status, code)
    assert gw.received() == []


@pytest.mark.parametrize(("target", "pattern"), [
    ("/_internal/sessions/abc", "/_internal/*"),
    ("/%5Finternal/sessions/abc", "/_internal/*"),
    ("/api/../_internal/sessions/abc", "/_internal/*"),
    ("/healthz", "/healthz"),
    ("/HEALTHZ/?probe=1", "/healthz"),
])
async def test_a_blocked_path_is_404_and_reaches_no_backend(
        gw: MemoryGateway, target: str, pattern: str) -> None:
    reply = await gw.send(request("GET", target))
    assert (reply.status, title(reply)) == (404, "blocked_path")
    assert b"never forwarded" in reply.body and pattern.encode() not in reply.body
    assert gw.received() == []
    assert gw.count("strangler_blocked_requests_total", pattern=pattern) == 1


async def test_an_oversize_declared_body_is_413_unread_and_never_invited(
        gw: MemoryGateway) -> None:
    body = Body()
    reply = await gw.send(request("POST", "/api/cart", [
        ("Content-Length", str(LIMIT + 1)), ("Expect", "100-continue")], body=body))
    assert (reply.status, title(reply)) == (413, "payload_too_large")
    assert (body.reads, body.continued) == (0, 0) and gw.received() == []


async def test_100_continue_is_sent_once_the_body_is_welcome(gw: MemoryGateway) -> None:
    body = Body(b"order=1")
    reply = await gw.send(request("POST", "/api/cart", [("Expect", "100-Continue")], body=body))
    assert reply.status == 200 and body.continued == 1
    [sent] = gw.received()
    assert sent.body == b"order=1" and "Expect" not in sent.headers


@pytest.mark.parametrize(("expect", "version"), [
    ("100-continue, fancy", (1, 1)), ("fancy", (1, 1)), ("100-continue", (1, 0))])
async def test_an_expectation_other_than_100_continue_is_417(
        gw: MemoryGateway, expect: str, version: tuple[int, int]) -> None:
    body = Body(b"x")
    reply = await gw.send(request("POST", "/api/cart", [("Expect", expect)], body=body,
                                  version=version))
    assert (reply.status, title(reply)) == (417, "expectation_failed")
    assert (body.reads, body.continued) == (0, 0) and gw.received() == []


async def test_a_small_body_is_read_whole_and_a_large_one_streamed(gw: MemoryGateway) -> None:
    small = await gw.prepare(request("POST", "/api/cart", body=b"x" * BUFFERED))
    assert (small.body, small.length) == (b"x" * BUFFERED, BUFFERED)
    large = await gw.prepare(request("POST", "/api/cart", body=b"x" * (BUFFERED + 1)))
    chunked = await gw.prepare(request("POST", "/api/cart", [("Transfer-Encoding", "chunked")],
                                       body=Body(b"x")))
    assert not isinstance(large.body, bytes) and large.length == BUFFERED + 1
    assert not isinstance(chunked.body, bytes) and chunked.length is None


async def test_a_streamed_body_reaches_the_backend_whole_up_to_the_limit(
        gw: MemoryGateway) -> None:
    chunks = [b"y" * 100] * (LIMIT // 100)
    reply = await gw.send(request("POST", "/api/cart", [("Transfer-Encoding", "chunked")],
                                  body=Body(*chunks)))
    assert reply.status == 200
    [sent] = gw.received()
    assert sent.body == b"".join(chunks) and "Transfer-Encoding" not in sent.headers


async def test_a_streamed_body_past_the_limit_is_cut_off_and_413(gw: MemoryGateway) -> None:
    body = Body(*[b"z" * 100] * (LIMIT // 100 + 5))
    reply = await gw.send(request("POST", "/api/cart", [("Transfer-Encoding", "chunked")],
                                  body=body))
    assert (reply.status, title(reply)) == (413, "payload_too_large")
    assert body.reads == LIMIT // 100 + 1, "not a chunk read past the one over the limit"
    assert gw.received() == [], "no backend got a whole body"


HOSTILE = [
    ("Connection", "keep-alive, X-Secret"), ("Keep-Alive", "timeout=5"), ("X-Secret", "s"),
    ("TE", "trailers"), ("Upgrade", "h2c"), ("Proxy-Authorization", "Basic eA=="),
    ("X-Strangler-Identity", "forged.jwt"), ("X_Strangler_Identity", "forged.jwt"),
    ("X-Internal-Token", "guess"), ("X-Strangler-Shadow", "1"), ("X-Shop-Session-Id", "other"),
    ("X-Shop-Node", "a"), ("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.test"), ("X_Forwarded_For", "198.51.100.7"),
    ("X-Real-IP", "198.51.100.7"), ("Forwarded", "for=198.51.100.7"),
    ("X-Original-URL", "/admin"), ("X-Forwarded-Port", "443"), ("X-Request-Id", "chosen-by-me"),
    ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ("Accept", "application/json"), ("Cookie", "theme=dark"),
]
GONE = {"connection", "keep-alive", "x-secret", "te", "upgrade", "proxy-authorization",
        "x-strangler-identity", "x_strangler_identity", "x-internal-token",
        "x-strangler-shadow", "x-shop-session-id", "x-shop-node", "x_forwarded_for",
        "x-real-ip", "forwarded", "x-original-url", "x-forwarded-port", "host"}


async def test_a_backend_sees_what_the_gateway_saw_of_the_client_not_its_claims(
        gw: MemoryGateway) -> None:
    assert (await gw.send(request("GET", "/api/cart", HOSTILE))).status == 200
    [sent] = gw.received()
    assert {n.lower() for n in sent.headers} & GONE == set()
    assert (sent.headers["Accept"], sent.headers["Cookie"]) == ("application/json", "theme=dark")
    assert sent.headers.getall("X-Forwarded-For") == ["203.0.113.9"]
    assert sent.headers.getall("X-Forwarded-Proto") == ["http"]
    assert sent.headers.getall("X-Forwarded-Host") == [HOST]
    assert sent.headers.getall("X-Request-Id") == [RID]
    trace = sent.headers["traceparent"].split("-")
    assert trace[1] == "4bf92f3577b34da6a3ce929d0e0e4736" and trace[2] != "00f067aa0ba902b7"


async def test_a_trusted_proxy_s_forwarding_headers_are_kept_and_extended(
        gw: MemoryGateway) -> None:
    incoming = request("GET", "/api/cart", [("X-Forwarded-For", "198.51.100.7"),
                                            ("X-Forwarded-Proto", "HTTPS, http"),
                                            ("X-Forwarded-Host", "evil.test")],
                       peer="10.1.2.3")
    assert (await gw.send(incoming)).status == 200
    [sent] = gw.received()
    assert sent.headers.getall("X-Forwarded-For") == ["198.51.100.7, 10.1.2.3"]
    assert sent.headers.getall("X-Forwarded-Proto") == ["https"]
    assert sent.headers.getall("X-Forwarded-Host") == [HOST], "the validated Host, always"


async def test_the_new_side_is_screened_alike(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, SCREENED, route("catalog", stage="new")) as gw:
        assert (await gw.send(request("GET", "/api/products", HOSTILE))).status == 200
        [sent] = gw.received("n1", "n2")
        assert gw.received("a", "b") == []
    assert {n.lower() for n in sent.headers} & GONE == set()
    assert sent.headers.getall("X-Forwarded-For") == ["203.0.113.9"]
