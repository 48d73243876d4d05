"""The session stage (gateway/pipeline/session.py), driven through the real pipeline: the
cookies it reads, the duplicate rule, and the bridge's work around an attempt -- the
session's node serves it, a write on new renews the client's sync token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.memory_gateway import (
    SID,
    MemoryGateway,
    cookie,
    gateway,
    memory_gateway,
    request,
    route,
    set_cookies,
    title,
)


def rejecting(data: dict[str, Any]) -> None:
    data["session"]["duplicate_cookies"] = "reject"


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[MemoryGateway]:
    async with memory_gateway(tmp_path) as gw:
        yield gw


@pytest.mark.parametrize("cookies", [
    [("Cookie", f"shop_session={SID}; theme=dark; shop_session=other")],
    [("Cookie", f"shop_session={SID}")] * 2,  # the same value, on two lines
])
async def test_two_session_cookies_under_reject_are_400_and_all_expired(
        tmp_path: Path, cookies: list[tuple[str, str]]) -> None:
    async with memory_gateway(tmp_path, rejecting) as gw:
        reply = await gw.send(request("GET", "/api/cart/items", cookies))
        assert (reply.status, title(reply)) == (400, "duplicate_session_cookie")
        assert reply.headers.getall("Set-Cookie") == [
            f"shop_session=; Max-Age=0; Path={path}{domain}"
            for path in ("/", "/api", "/api/cart", "/api/cart/items")
            for domain in ("", "; Domain=shop.test")]
        assert gw.received() == [] and gw.store.calls == {}
        assert gw.count("strangler_session_operations_total", op="refused",
                        reason="duplicate_session_cookie") == 1


@pytest.mark.parametrize(("peer", "secure"), [("10.1.2.3", True), ("203.0.113.9", False)])
async def test_duplicates_behind_a_trusted_https_proxy_are_expired_secure(
        tmp_path: Path, peer: str, secure: bool) -> None:
    """The listener speaks plain HTTP: https is what a trusted proxy says it was, as for
    the gateway's own cookies. A browser ignores an expiry of a ``__Secure-`` cookie
    that does not say Secure: the client would keep both, and get 400 ever after."""
    prefixed = (rejecting, lambda d: d["session"].update(cookie="__Secure-sid"),
                gateway(trusted_proxies=["10.0.0.0/8"]))
    async with memory_gateway(tmp_path, *prefixed) as gw:
        reply = await gw.send(request("GET", "/", [
            ("X-Forwarded-Proto", "https"), ("Cookie", "__Secure-sid=x; __Secure-sid=y")],
            peer=peer))
        assert (reply.status, title(reply)) == (400, "duplicate_session_cookie")
        lines = reply.headers.getall("Set-Cookie")
        assert lines and all(line.startswith("__Secure-sid=; Max-Age=0;") for line in lines)
        assert all(line.endswith("; Secure") is secure for line in lines)


async def test_the_duplicate_rule_of_the_profile_picks_the_session(gw: MemoryGateway) -> None:
    ex = await gw.prepare(request(headers=[("Cookie", f"shop_session=first; shop_session={SID}")]))
    assert ex.sid == SID, "config.yaml: the shop (aiohttp) takes the last"


async def test_the_gateway_s_cookies_are_read(gw: MemoryGateway) -> None:
    ex = await gw.prepare(request(headers=[
        ("Cookie", f'theme=dark; shop_session="{SID}"'),
        cookie(strangler_aff="b", strangler_sync="tok-1", strangler_cid="cid-1")]))
    assert (ex.sid, ex.hint, ex.sync, ex.client_id) == (SID, "b", "tok-1", "cid-1")
    bare = await gw.prepare(request())
    assert (bare.sid, bare.hint, bare.sync, bare.client_id) == (None, None, None, None)


@pytest.mark.parametrize("value", ["a b", "a\\b", "x" * 4097, ""])
async def test_a_cookie_that_cannot_be_a_session_id_is_ignored(
        gw: MemoryGateway, value: str) -> None:
    reply = await gw.send(request("GET", "/api/cart", [("Cookie", f"shop_session={value}")]))
    assert reply.status == 200
    assert gw.store.calls == {}, "no session asked about"
    [sent] = gw.received()
    assert sent.headers["Cookie"] == f"shop_session={value}", "legacy judges it, as before"


async def test_a_session_goes_to_the_node_that_holds_it_whatever_the_affinity(
        gw: MemoryGateway) -> None:
    gw.seed(node="b")
    reply = await gw.send(request("GET", "/api/cart", [cookie(shop_session=SID,
                                                              strangler_aff="a")]))
    assert (reply.status, reply.body) == (200, b"b")
    assert gw.store.calls == {"read": 1}
    got = set_cookies(reply)
    assert got["strangler_aff"].startswith("b;"), "the client's affinity corrected"
    sync = got["strangler_sync"].split(";")[0]
    # with that token, this process knows the session in sync: no Redis at all
    again = await gw.send(request("GET", "/api/cart", [cookie(
        shop_session=SID, strangler_aff="b", strangler_sync=sync)]))
    assert (again.status, again.body) == (200, b"b") and gw.store.calls == {"read": 1}
    assert "Set-Cookie" not in again.headers


async def test_a_write_on_new_carries_the_identity_and_renews_the_sync_token(
        tmp_path: Path) -> None:
    staged = (route("cart", stage="new"), route("checkout", stage="new"))
    async with memory_gateway(tmp_path, *staged) as gw:
        gw.seed()
        reply = await gw.send(request("POST", "/api/cart", [cookie(
            shop_session=SID, strangler_sync="old-token")], body=b"sku=1"))
        assert reply.status == 200 and reply.body in (b"n1", b"n2")
        [sent] = gw.received()
        assert sent.headers["X-Strangler-Identity"].count(".") == 2, "a JWT"
        renewed = set_cookies(reply)["strangler_sync"].split(";")[0]
        assert renewed not in ("", "old-token")
        read = await gw.send(request("GET", "/api/cart", [cookie(
            shop_session=SID, strangler_sync=renewed)]))
        assert read.status == 200 and "strangler_sync" not in set_cookies(read), \
            "a read on new changes nothing: the token stays"


async def test_legacy_never_sees_an_identity_token(gw: MemoryGateway) -> None:
    gw.seed()
    assert (await gw.send(request("POST", "/api/cart", [cookie(shop_session=SID)]))).status \
        == 200
    assert all("X-Strangler-Identity" not in r.headers for r in gw.received())
