"""The respond stage (gateway/pipeline/respond.py), driven through the real pipeline: what
the client gets of a backend's answer -- never an internal or hop-by-hop header, always
its request id, the gateway's cookies only when they change, a HEAD answer's length, a
stream relayed as it comes and cut (``Abort``) when its backend breaks it."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from gateway.edge.http import Abort
from gateway.errors import UpstreamReset
from testkit.fakes import Reply as Answer
from tests.support.memory_gateway import (
    LEGACY,
    NEW,
    RID,
    SID,
    cookie,
    gateway,
    memory_gateway,
    request,
    route,
    set_cookies,
    title,
)

CATALOG = "/api/products"
LEAKY = [("X-Shop-Session-Id", SID), ("X-Shop-Session-Rev", "3"), ("X-Shop-Node", "a"),
         ("X-Strangler-Identity", "a.jwt.token"), ("X_Strangler_Identity", "a.jwt.token"),
         ("X-Internal-Token", "secret"), ("X-Strangler-Fence", "9"),
         ("X-Strangler-Backend", "forged"), ("Connection", "close, X-Debug"),
         ("X-Debug", "stack trace"), ("Keep-Alive", "timeout=5"), ("Proxy-Authenticate", "x"),
         ("X-Request-Id", "the-backend-s-own"), ("Cache-Control", "no-store"),
         ("Set-Cookie", "theme=dark; Path=/")]
GONE = {"x-shop-session-id", "x-shop-session-rev", "x-shop-node", "x-strangler-identity",
        "x_strangler_identity", "x-internal-token", "x-strangler-fence", "connection",
        "x-debug", "keep-alive", "proxy-authenticate", "content-length"}


async def test_nothing_internal_or_hop_by_hop_reaches_the_client(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, route("catalog", stage="new")) as gw:
        for n in NEW:
            gw.backends[n].script(Answer(200, b"{}", LEAKY))
        reply = await gw.send(request("GET", CATALOG))
        assert reply.status == 200 and reply.body == b"{}"
        assert {n.lower() for n in reply.headers} & GONE == set()
        assert reply.headers.getall("X-Request-Id") == [RID]
        [backend] = reply.headers.getall("X-Strangler-Backend")
        assert backend in ("new:n1", "new:n2"), "config.yaml turns the debug header on"
        assert reply.headers["Cache-Control"] == "no-store"
        assert set_cookies(reply) == {"theme": "dark; Path=/"}


async def test_a_legacy_answer_is_cleaned_alike(tmp_path: Path) -> None:
    node_only = [h for h in LEAKY if not h[0].startswith("X-Shop-Session")]
    async with memory_gateway(tmp_path, gateway(debug_backend_header=False)) as gw:
        for n in LEGACY:
            gw.backends[n].script(Answer(200, b"page", node_only))
        reply = await gw.send(request("GET", "/", [cookie(strangler_aff="a")]))
        assert reply.body == b"page"
        assert {n.lower() for n in reply.headers} & (GONE | {"x-strangler-backend"}) == set()
        assert reply.headers.getall("X-Request-Id") == [RID]


async def test_the_affinity_cookie_is_set_only_when_it_changes(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path) as gw:
        first = await gw.send(request("GET", "/api/cart"))
        node = first.body.decode()
        assert set_cookies(first) == {
            "strangler_aff": f"{node}; HttpOnly; Path=/; SameSite=Lax"}
        again = await gw.send(request("GET", "/api/cart", [cookie(strangler_aff=node)]))
        assert again.body.decode() == node and "Set-Cookie" not in again.headers
        moved = await gw.send(request("GET", "/api/cart", [cookie(strangler_aff="gone")]))
        assert set_cookies(moved)["strangler_aff"].split(";")[0] == moved.body.decode()


async def test_an_answer_from_new_sets_no_affinity(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, route("catalog", stage="new")) as gw:
        for headers in ([], [cookie(strangler_aff="a")]):
            reply = await gw.send(request("GET", CATALOG, headers))
            assert reply.status == 200 and "Set-Cookie" not in reply.headers


@pytest.mark.parametrize(("peer", "secure"), [("10.1.2.3", True), ("203.0.113.9", False)])
async def test_the_gateway_s_cookies_are_secure_behind_a_trusted_https_proxy(
        tmp_path: Path, peer: str, secure: bool) -> None:
    async with memory_gateway(tmp_path, gateway(trusted_proxies=["10.0.0.0/8"])) as gw:
        reply = await gw.send(request("GET", "/", [("X-Forwarded-Proto", "https")], peer=peer))
        assert set_cookies(reply)["strangler_aff"].endswith("; Secure") is secure


async def test_a_refused_write_on_new_still_renews_the_sync_token(tmp_path: Path) -> None:
    staged = (route("cart", stage="new"), route("checkout", stage="new"))
    async with memory_gateway(tmp_path, *staged) as gw:
        gw.seed()
        for n in NEW:
            gw.backends[n].fail_next(1, UpstreamReset)
        reply = await gw.send(request("POST", "/api/cart", [cookie(
            shop_session=SID, strangler_sync="old-token")], body=b"sku=1"))
        assert (reply.status, title(reply)) == (502, "bad_gateway")
        token = set_cookies(reply)["strangler_sync"].split(";")[0]
        assert token not in ("", "old-token"), "new may have changed the session"


async def test_a_head_answer_keeps_the_length_a_get_would_have(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path) as gw:
        for n in LEGACY:
            gw.backends[n].script(Answer(200, b"x" * 1234))
        reply = await gw.send(request("HEAD", CATALOG))
        assert (reply.status, reply.body, reply.length) == (200, b"", 1234)


async def test_a_stream_is_relayed_as_it_comes_and_let_go(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path) as gw:
        for n in LEGACY:
            gw.backends[n].script(Answer.stream([b"ab", b"cd"], length=4))
        reply = await gw.send(request("GET", "/download"))
        assert reply.stream is not None and reply.length == 4
        assert [c async for c in reply.stream] == [b"ab", b"cd"]
        [stream] = [s for n in LEGACY for s in gw.backends[n].streams]
        assert stream.released


async def test_a_stream_its_backend_cuts_midway_ends_in_abort(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path) as gw:
        for n in LEGACY:
            gw.backends[n].script(Answer.stream([b"ab", b"cd"], cut=UpstreamReset))
        reply = await gw.send(request("GET", "/download"))
        assert reply.status == 200 and reply.stream is not None and reply.length is None
        relayed = []
        with pytest.raises(Abort):
            async for chunk in reply.stream:
                relayed.append(chunk)
        assert relayed == [b"ab", b"cd"], "what arrived went out before the cut"
        [stream] = [s for n in LEGACY for s in gw.backends[n].streams]
        assert stream.released


async def test_a_client_that_leaves_midway_lets_the_backend_go_and_blames_no_one(
        tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, route("catalog", stage="new")) as gw:
        for n in NEW:
            gw.backends[n].script(Answer.stream([b"ab", b"cd", b"ef"]))
        reply = await gw.send(request("GET", CATALOG))
        assert isinstance(reply.stream, AsyncGenerator)
        assert await anext(reply.stream) == b"ab"
        await reply.stream.aclose()  # what the listener does when the client is gone
        [stream] = [s for n in NEW for s in gw.backends[n].streams]
        assert stream.released, "at once, not whenever the generator is collected"
        assert [m.failures for m in gw.parts.held.new.members.values()] == [0, 0]
        assert gw.total("strangler_upstream_errors_total") == 0

