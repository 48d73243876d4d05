"""The monolith's session-export hook: revision headers and /_internal/sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from adapters import wire
from adapters.document import Principal
from adapters.profile import build
from legacy_shop.app import create_app
from legacy_shop.settings import Settings
from legacy_shop.testing import cookie, log_in
from tests.support.checks import expect_response

Client = TestClient[Any, Any]
SID, REV, NODE = wire.SESSION_ID_HEADER, wire.SESSION_REV_HEADER, wire.NODE_HEADER
# The demo shop's session profile, as the gateway reads it from config.yaml.
SHOP = build(yaml.safe_load((Path(__file__).resolve().parents[2] / "config.yaml").read_text())
             ["session"])


@pytest.fixture
async def shop(aiohttp_client: Any, database_url: str, internal_token: str) -> Client:
    settings = Settings(node_id="n1", database_url=database_url, internal_token=internal_token)
    client: Client = await aiohttp_client(create_app(settings))
    return client


@pytest.fixture
def auth(internal_token: str) -> dict[str, str]:
    return {wire.INTERNAL_TOKEN_HEADER: internal_token}


def _path(sid: str) -> str:
    return wire.INTERNAL_SESSIONS_PATH.format(sid=sid)


def _stamp(resp: Any) -> tuple[str | None, str | None, str | None]:
    return resp.headers.get(SID), resp.headers.get(REV), resp.headers.get(NODE)


async def test_revision_headers_follow_the_session(shop: Client) -> None:
    assert _stamp(await shop.get("/api/products")) == (None, None, None)  # no cookie, no session
    resp = await shop.post("/login", json={"username": "alice", "password": "wonderland"})
    sid = resp.cookies["shop_session"].value
    assert _stamp(resp) == (sid, "1", "n1")
    assert _stamp(await shop.post("/api/cart/items", json={"product_id": 2, "qty": 1})) == (
        sid, "2", "n1")
    assert _stamp(await shop.get("/api/cart"))[1] == "2"  # reads change nothing
    assert _stamp(await shop.get("/api/products/4"))[1] == "3"  # last viewed product
    assert _stamp(await shop.get("/api/products/4"))[1] == "3"  # ... unchanged
    assert _stamp(await shop.delete("/api/cart/items/9"))[1] == "3"  # absent line: no change
    assert _stamp(await shop.get("/"))[1] == "3"
    resp = await shop.post("/api/cart/items", json={"product_id": 99, "qty": 1})
    assert resp.status == 404 and _stamp(resp) == (sid, "3", "n1")  # errors are stamped too
    await expect_response(await shop.post("/api/checkout"), 201, "checkout")
    assert _stamp(await shop.get("/api/cart"))[1] == "4"  # the order emptied the basket
    resp = await shop.post("/logout")
    assert _stamp(resp) == (sid, "0", "n1")


async def test_login_reports_the_new_session(shop: Client) -> None:
    old = await log_in(shop, "bob")
    resp = await shop.post("/login", json={"username": "bob", "password": "wonderland"})
    new = resp.cookies["shop_session"].value
    assert _stamp(resp) == (new, "1", "n1") and new != old


async def test_unknown_cookie_is_revision_zero(shop: Client) -> None:
    resp = await shop.get("/api/cart", headers=cookie("z" * 43))
    assert resp.status == 401 and _stamp(resp) == ("z" * 43, "0", "n1")
    resp = await shop.get("/nowhere", headers=cookie("z" * 43))
    assert resp.status == 404 and _stamp(resp) == ("z" * 43, "0", "n1")


async def test_failed_login_with_a_cookie_keeps_the_session(shop: Client) -> None:
    sid = await log_in(shop, "carol")
    resp = await shop.post("/login", json={"username": "carol", "password": "no"})
    assert resp.status == 401 and _stamp(resp) == (sid, "1", "n1")


async def test_export(shop: Client, auth: dict[str, str]) -> None:
    sid = await log_in(shop, "alice")
    await expect_response(await shop.post("/api/cart/items", json={"product_id": 5, "qty": 2}),
                          200, "adding product 5")
    resp = await shop.get(_path(sid), headers=auth)
    body = await resp.json()
    assert resp.status == 200 and "Set-Cookie" not in resp.headers
    assert body["session_id"] == sid and body["revision"] == 2 and body["node"] == "n1"
    assert body["data"]["uid"] == 1 and body["data"]["uname"] == "alice"
    assert body["data"]["basket"] == [{"sku": 5, "quantity": 2}]
    shared = SHOP.from_export(body["data"])  # what the gateway makes of it
    assert shared.user == Principal(1, "alice") and shared.fields["cart"] == {"5": 2}
    assert {"csrf", "created_at"} <= set(shared.extra)
    assert (await shop.get(_path("u" * 43), headers=auth)).status == 404
    assert (await shop.get(_path("short"), headers=auth)).status == 404


async def test_internal_token_is_required(shop: Client, auth: dict[str, str]) -> None:
    sid = await log_in(shop, "alice")
    wrong = {wire.INTERNAL_TOKEN_HEADER: auth[wire.INTERNAL_TOKEN_HEADER] + "x"}
    body: dict[str, Any] = {"data": {"uid": None, "uname": None, "basket": []},
                            "expected_revision": None}
    for headers in ({}, wrong, {wire.INTERNAL_TOKEN_HEADER: ""}):
        assert (await shop.get(_path(sid), headers=headers)).status == 403
        assert (await shop.put(_path(sid), headers=headers, json=body)).status == 403
        assert (await shop.delete(_path(sid), headers=headers)).status == 403
    assert (await shop.get("/api/me")).status == 200  # nothing changed


async def test_no_token_configured_means_off(aiohttp_client: Any, database_url: str) -> None:
    client: Client = await aiohttp_client(create_app(Settings(database_url=database_url)))
    resp = await client.get(_path("a" * 43), headers={wire.INTERNAL_TOKEN_HEADER: ""})
    assert resp.status == 503
    resp = await client.delete(_path("a" * 43), headers={wire.INTERNAL_TOKEN_HEADER: "guess"})
    assert resp.status == 503


async def test_import_then_the_api_sees_user_and_cart(shop: Client, auth: dict[str, str]
                                                      ) -> None:
    sid = "imported-session-0123456789abcdef"
    data = {"uid": 2, "uname": "bob", "basket": [{"sku": 3, "quantity": 1},
                                                 {"sku": 1, "quantity": 2}],
            "theme": "dark"}
    resp = await shop.put(_path(sid), headers=auth, json={"data": data, "expected_revision": None})
    assert resp.status == 200 and await resp.json() == {"revision": 1}
    me = await shop.get("/api/me", headers=cookie(sid))
    assert await me.json() == {"user": {"id": 2, "username": "bob"}}
    assert _stamp(me) == (sid, "1", "n1")
    cart = await (await shop.get("/api/cart", headers=cookie(sid))).json()
    assert [(i["product_id"], i["qty"]) for i in cart["items"]] == [(1, 2), (3, 1)]
    page = await (await shop.get("/", headers=cookie(sid))).text()
    assert "Logged in as <strong>bob</strong>" in page and "Cast-Iron Kettle" in page
    exported = await (await shop.get(_path(sid), headers=auth)).json()
    assert exported["data"]["theme"] == "dark" and exported["data"]["csrf"]


async def test_an_import_comes_back_out_as_it_went_in(shop: Client, auth: dict[str, str]
                                                      ) -> None:
    """Keys the node does not read travel as given; the basket is the node's own form."""
    sid = "roundtrip-session-0123456789abcdef"
    data = {"uid": 3, "uname": "carol", "settled_orders": [57, 41, 57],
            "basket": [{"sku": 2, "quantity": 1}, {"sku": 1, "quantity": 0},
                       {"sku": 2, "quantity": 2}],
            "flash": {"\u00fc": ["nested", 1, 2.5, None, True]}, "csrf": "t0k"}
    resp = await shop.put(_path(sid), headers=auth, json={"data": data, "expected_revision": 0})
    assert resp.status == 200
    exported = (await (await shop.get(_path(sid), headers=auth)).json())["data"]
    assert exported == {**data, "created_at": exported["created_at"],
                        "basket": [{"sku": 2, "quantity": 3}], "settled_orders": [41, 57]}
    cart = await (await shop.get("/api/cart", headers=cookie(sid))).json()
    assert [(i["product_id"], i["qty"]) for i in cart["items"]] == [(2, 3)]


async def test_a_session_born_on_new_works_on_the_node(shop: Client, auth: dict[str, str]
                                                       ) -> None:
    """New's login writes only the user: no basket, no CSRF token yet."""
    sid = "born-on-new-session-0123456789abcdef"
    resp = await shop.put(_path(sid), headers=auth,
                          json={"data": {"uid": 4, "uname": "dave"}, "expected_revision": 0})
    assert resp.status == 200
    assert await (await shop.get("/api/me", headers=cookie(sid))).json() == {
        "user": {"id": 4, "username": "dave"}}
    resp = await shop.post("/api/cart/items", headers=cookie(sid),
                           json={"product_id": 2, "qty": 1})
    assert resp.status == 200 and (await resp.json())["count"] == 1
    exported = (await (await shop.get(_path(sid), headers=auth)).json())["data"]
    assert exported["basket"] == [{"sku": 2, "quantity": 1}] and exported["csrf"]


async def test_import_is_compare_and_set(shop: Client, auth: dict[str, str]) -> None:
    sid = await log_in(shop, "alice")  # revision 1

    async def put(expected: int | None, qty: int, target: str = sid) -> tuple[int, Any]:
        data = {"uid": 1, "uname": "alice", "basket": [{"sku": 4, "quantity": qty}]}
        resp = await shop.put(_path(target), headers=auth,
                              json={"data": data, "expected_revision": expected})
        return resp.status, await resp.json()

    assert await put(1, 1) == (200, {"revision": 2})
    assert await put(1, 5) == (409, {"revision": 2, "fenced": False})
    assert await put(2, 3) == (200, {"revision": 3})
    assert await put(None, 7) == (200, {"revision": 4})
    cart = await (await shop.get("/api/cart")).json()
    assert cart["count"] == 7
    assert await put(3, 1, "q" * 43) == (409, {"revision": 0, "fenced": False})
    assert await put(0, 1, "q" * 43) == (200, {"revision": 1})
    # The API's own change is seen by the next compare-and-set.
    await expect_response(await shop.post("/api/cart/items", json={"product_id": 1, "qty": 1}),
                          200, "adding product 1")
    assert await put(4, 1) == (409, {"revision": 5, "fenced": False})


@pytest.mark.parametrize("body", [
    b"{", b"[]", b'{"data": {}}', b'{"data": [], "expected_revision": null}',
    b'{"data": {"uid": "1", "uname": "x", "basket": []}, "expected_revision": null}',
    b'{"data": {"uid": true, "uname": "x", "basket": []}, "expected_revision": null}',
    b'{"data": {"uid": 1, "uname": null, "basket": []}, "expected_revision": null}',
    b'{"data": {"uid": 1, "uname": "x", "basket": {}}, "expected_revision": null}',
    b'{"data": {"uid": 1, "uname": "x", "basket": [{"sku": "1", "quantity": 1}]},'
    b' "expected_revision": null}',
    b'{"data": {"uid": 1, "uname": "x", "settled_orders": [0]}, "expected_revision": null}',
    b'{"data": {"uid": null, "uname": 7}, "expected_revision": null}',
    b'{"data": {"uid": 1, "uname": "x", "basket": []}, "expected_revision": "2"}',
    b'{"data": {"uid": 1, "uname": "x", "basket": []}, "expected_revision": true}',
])
async def test_import_rejects_bad_bodies(shop: Client, auth: dict[str, str], body: bytes
                                         ) -> None:
    resp = await shop.put(_path("b" * 43), headers={**auth, "Content-Type": "application/json"},
                          data=body)
    assert resp.status == 400 and (await resp.json())["error"] == "bad_request"
    assert (await shop.get(_path("b" * 43), headers=auth)).status == 404


async def test_import_rejects_a_bad_session_id(shop: Client, auth: dict[str, str]) -> None:
    body: dict[str, Any] = {"data": {"uid": None, "uname": None, "basket": []},
                            "expected_revision": None}
    assert (await shop.put(_path("short"), headers=auth, json=body)).status == 400
    assert (await shop.put(_path("x" * 129), headers=auth, json=body)).status == 400


async def test_delete(shop: Client, auth: dict[str, str]) -> None:
    sid = await log_in(shop, "dave")
    assert (await shop.delete(_path(sid), headers=auth)).status == 204
    assert (await shop.get(_path(sid), headers=auth)).status == 404
    resp = await shop.get("/api/me")
    assert resp.status == 401 and _stamp(resp) == (sid, "0", "n1")
    assert (await shop.delete(_path(sid), headers=auth)).status == 204  # idempotent


async def test_logged_out_session_is_gone(shop: Client, auth: dict[str, str]) -> None:
    sid = await log_in(shop, "dave")
    await expect_response(await shop.post("/logout"), 200, "logout")
    assert (await shop.get(_path(sid), headers=auth)).status == 404


async def test_fences_keep_a_late_import_out(shop: Client, auth: dict[str, str]) -> None:
    """An import from a gateway whose sync lock ran out lands nowhere once a newer fence
    has looked at the session; the export says which fenced import the node holds."""
    sid = await log_in(shop, "alice")
    data = {"uid": 1, "uname": "alice", "basket": [{"sku": 4, "quantity": 2}]}

    async def put(fence: int, expected: int) -> tuple[int, Any]:
        resp = await shop.put(_path(sid), headers=auth, json={
            "data": data, "expected_revision": expected, "fence": fence})
        return resp.status, await resp.json()

    async def export(fence: int | None = None) -> Any:
        headers = dict(auth) if fence is None else {**auth, "X-Strangler-Fence": str(fence)}
        resp = await shop.get(_path(sid), headers=headers)
        assert resp.status == 200
        return await resp.json()

    assert "imported" not in await export()
    assert await put(100, 1) == (200, {"revision": 2})
    assert (await export())["imported"] == {"fence": 100, "revision": 2}
    assert (await export(fence=200))["revision"] == 2  # a newer holder looks
    assert await put(150, 2) == (409, {"revision": 2, "fenced": True})
    assert await put(200, 2) == (200, {"revision": 3})
    assert (await export(fence=120))["imported"] == {"fence": 200, "revision": 3}
    assert await put(199, 3) == (409, {"revision": 3, "fenced": True})


async def test_a_fence_is_remembered_for_a_session_the_node_does_not_hold(
        shop: Client, auth: dict[str, str]) -> None:
    sid = "f" * 43
    resp = await shop.get(_path(sid), headers={**auth, "X-Strangler-Fence": "500"})
    assert resp.status == 404
    resp = await shop.put(_path(sid), headers=auth, json={
        "data": {"uid": None, "basket": []}, "expected_revision": 0, "fence": 499})
    assert resp.status == 409 and (await resp.json())["fenced"] is True


@pytest.mark.parametrize("fence", ["-1", "1.5", "x", "1" * 20, "١٢"])
async def test_a_malformed_fence_is_a_400(shop: Client, auth: dict[str, str],
                                          fence: str) -> None:
    sid = await log_in(shop, "bob")
    resp = await shop.get(_path(sid), headers={**auth, "X-Strangler-Fence": fence})
    assert resp.status == 400
    resp = await shop.put(_path(sid), headers=auth, json={
        "data": {"uid": None, "basket": []}, "expected_revision": None, "fence": -1})
    assert resp.status == 400
