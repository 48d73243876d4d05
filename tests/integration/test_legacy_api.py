"""The monolith's shop API end to end in-process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from legacy_shop.app import create_app
from legacy_shop.settings import Settings
from legacy_shop.testing import cookie, log_in

Client = TestClient[Any, Any]
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
async def shop(aiohttp_client: Any, database_url: str, internal_token: str) -> Client:
    settings = Settings(node_id="a", database_url=database_url, internal_token=internal_token)
    client: Client = await aiohttp_client(create_app(settings))
    return client


async def _json(resp: Any, status: int) -> Any:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


async def test_products(shop: Client) -> None:
    body = await _json(await shop.get("/api/products"), 200)
    products = body["products"]
    assert [p["id"] for p in products] == list(range(1, 13))
    for p in products:
        assert set(p) == {"id", "name", "description", "price"}
        assert re.fullmatch(r"\d+\.\d\d", p["price"])
    one = await _json(await shop.get("/api/products/1"), 200)
    assert one == {"product": products[0]}
    assert products[0]["price"] == "12.50"


async def test_whole_flow(shop: Client) -> None:
    resp = await shop.post("/login", json={"username": "alice", "password": "wonderland"})
    assert await _json(resp, 200) == {"user": {"id": 1, "username": "alice"}}
    set_cookie = resp.headers["Set-Cookie"]
    assert set_cookie.startswith("shop_session=")
    assert "HttpOnly" in set_cookie and "Path=/" in set_cookie and "SameSite=Lax" in set_cookie
    assert "Secure" not in set_cookie
    assert await _json(await shop.get("/api/me"), 200) == {"user": {"id": 1, "username": "alice"}}
    assert await _json(await shop.get("/api/cart"), 200) == {"items": [], "count": 0,
                                                            "total": "0.00"}

    await _json(await shop.post("/api/cart/items", json={"product_id": 3, "qty": 2}), 200)
    await _json(await shop.post("/api/cart/items", json={"product_id": 1, "qty": 1}), 200)
    cart = await _json(await shop.post("/api/cart/items", json={"product_id": 3, "qty": 1}), 200)
    assert cart == {
        "items": [
            {"product_id": 1, "name": "Darjeeling First Flush", "qty": 1,
             "unit_price": "12.50", "line_total": "12.50"},
            {"product_id": 3, "name": "Cast-Iron Kettle", "qty": 3,
             "unit_price": "59.00", "line_total": "177.00"},
        ],
        "count": 4,
        "total": "189.50",
    }
    assert await _json(await shop.get("/api/cart"), 200) == cart
    cart = await _json(await shop.delete("/api/cart/items/1"), 200)
    assert [i["product_id"] for i in cart["items"]] == [3]
    assert await _json(await shop.delete("/api/cart/items/1"), 200) == cart  # absent is fine

    first = (await _json(await shop.post("/api/checkout"), 201))["order"]
    assert set(first) == {"id", "status", "created_at", "items", "total"}
    assert first["status"] == "placed" and first["total"] == "177.00"
    assert first["items"] == cart["items"] and TIMESTAMP.fullmatch(first["created_at"])
    assert (await _json(await shop.get("/api/cart"), 200))["items"] == []

    await _json(await shop.post("/api/cart/items", json={"product_id": 12, "qty": 1}), 200)
    second = (await _json(await shop.post("/api/checkout"), 201))["order"]
    assert second["id"] > first["id"]
    orders = await _json(await shop.get("/api/orders"), 200)
    assert orders == {"orders": [second, first]}  # newest first

    resp = await shop.post("/logout")
    assert await _json(resp, 200) == {"ok": True}
    assert "Max-Age=0" in resp.headers["Set-Cookie"]
    for path in ("/api/me", "/api/cart", "/api/orders"):
        assert await _json(await shop.get(path), 401) == {"error": "not_logged_in",
                                                         "detail": "log in first"}
    assert await _json(await shop.post("/logout"), 200) == {"ok": True}  # again: still fine


async def test_orders_are_per_user(shop: Client, aiohttp_client: Any) -> None:
    await log_in(shop, "alice")
    await _json(await shop.post("/api/cart/items", json={"product_id": 2, "qty": 1}), 200)
    await _json(await shop.post("/api/checkout"), 201)
    bob: Client = await aiohttp_client(shop.server)
    await log_in(bob, "bob")
    assert await _json(await bob.get("/api/orders"), 200) == {"orders": []}
    assert (await _json(await bob.get("/api/cart"), 200))["items"] == []


async def test_secure_cookie_behind_tls(shop: Client) -> None:
    resp = await shop.post("/login", json={"username": "bob", "password": "wonderland"},
                           headers={"X-Forwarded-Proto": "https"})
    assert resp.status == 200 and "Secure" in resp.headers["Set-Cookie"]
    resp = await shop.post("/logout", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in resp.headers["Set-Cookie"]


@pytest.mark.parametrize("body", [{"username": "alice", "password": "nope"},
                                  {"username": "zed", "password": "wonderland"},
                                  {"username": "", "password": ""}])
async def test_bad_credentials(shop: Client, body: dict[str, str]) -> None:
    resp = await shop.post("/login", json=body)
    assert await _json(resp, 401) == {"error": "invalid_credentials",
                                      "detail": "unknown user or wrong password"}
    assert "Set-Cookie" not in resp.headers


async def test_login_issues_a_new_session_id_every_time(shop: Client) -> None:
    planted = "p" * 43  # an id an attacker got the victim to use
    resp = await shop.post("/login", json={"username": "carol", "password": "wonderland"},
                           headers=cookie(planted))
    first = resp.cookies["shop_session"].value
    assert first != planted
    second = await log_in(shop, "carol")
    assert second != first
    shop.session.cookie_jar.clear()
    assert (await shop.get("/api/me", headers=cookie(first))).status == 401
    assert (await shop.get("/api/me", headers=cookie(second))).status == 200


async def test_form_login_redirects(shop: Client) -> None:
    form = {"username": "dave", "password": "wonderland"}
    resp = await shop.post("/login", data=form, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"
    assert "shop_session" in resp.cookies
    assert (await _json(await shop.get("/api/me"), 200))["user"]["username"] == "dave"
    resp = await shop.post("/login", data={**form, "password": "x"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/?error=invalid_credentials"
    resp = await shop.post("/login", data={"username": "dave"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/?error=bad_request"


async def test_anonymous_cart_operations_are_401(shop: Client) -> None:
    calls = [
        shop.get("/api/cart"),
        shop.post("/api/cart/items", json={"product_id": 1, "qty": 1}),
        shop.delete("/api/cart/items/1"),
        shop.post("/api/checkout"),
        shop.get("/api/orders"),
        shop.get("/api/me"),
    ]
    for call in calls:
        assert (await _json(await call, 401))["error"] == "not_logged_in"


def _raw(data: bytes) -> dict[str, Any]:
    return {"data": data, "headers": {"Content-Type": "application/json"}}


MALFORMED: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("POST", "/login", _raw(b"{"), 400, "bad_request"),
    ("POST", "/login", _raw(b"[]"), 400, "bad_request"),
    ("POST", "/login", _raw(b"\xff\xfe"), 400, "bad_request"),
    ("POST", "/login", {"json": {"username": 1, "password": "x"}}, 400, "bad_request"),
    ("POST", "/login", {"json": {"username": "alice"}}, 400, "bad_request"),
    ("POST", "/api/cart/items", _raw(b""), 400, "bad_request"),
    ("POST", "/api/cart/items", _raw(b"not json"), 400, "bad_request"),
    ("POST", "/api/cart/items", _raw(b"[" * 50_000), 400, "bad_request"),
    ("POST", "/api/cart/items", {"json": [1, 2]}, 400, "bad_request"),
    ("POST", "/api/cart/items", {"json": {"product_id": "1", "qty": 1}}, 400, "bad_request"),
    ("POST", "/api/cart/items", {"json": {"product_id": True, "qty": 1}}, 400, "bad_request"),
    ("POST", "/api/cart/items", {"json": {"product_id": 1, "qty": True}}, 400, "bad_request"),
    ("POST", "/api/cart/items", {"json": {"product_id": 1, "qty": 1.0}}, 400, "bad_request"),
    ("POST", "/api/cart/items", {"json": {"product_id": 1, "qty": 0}}, 400, "bad_request"),
    ("POST", "/api/cart/items", {"json": {"product_id": 1, "qty": 101}}, 400, "bad_request"),
    ("POST", "/api/cart/items", {"json": {"product_id": 1, "qty": 10**40}}, 400, "bad_request"),
    ("POST", "/api/cart/items", {"json": {"product_id": 99, "qty": 1}}, 404,
     "product_not_found"),
    ("POST", "/api/cart/items", {"json": {"product_id": 10**40, "qty": 1}}, 404,
     "product_not_found"),
    ("POST", "/api/cart/items", {"json": {"product_id": -3, "qty": 1}}, 404, "product_not_found"),
    ("GET", "/api/products/abc", {}, 404, "not_found"),
    ("GET", "/api/products/1.5", {}, 404, "not_found"),
    ("GET", "/api/products/0", {}, 404, "not_found"),
    ("GET", "/api/products/99", {}, 404, "not_found"),
    ("GET", "/api/products/99999999999999999999999", {}, 404, "not_found"),
    ("GET", "/api/products/%20", {}, 404, "not_found"),
    ("DELETE", "/api/cart/items/abc", {}, 404, "not_found"),
    ("GET", "/api/nothing-here", {}, 404, "not_found"),
    ("POST", "/api/checkout", {"headers": {"Idempotency-Key": "k" * 256}}, 400,
     "invalid_idempotency_key"),
    ("POST", "/api/checkout", {"headers": {"Idempotency-Key": ""}}, 400,
     "invalid_idempotency_key"),
    ("POST", "/api/checkout", {"headers": {"Idempotency-Key": "caf\u00e9"}}, 400,
     "invalid_idempotency_key"),
    ("POST", "/api/checkout", _raw(b"{oops"), 400, "bad_request"),
    ("POST", "/api/checkout", {}, 400, "cart_empty"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), MALFORMED,
                         ids=[f"{m} {p} {c} {i}" for i, (m, p, _, _, c) in enumerate(MALFORMED)])
async def test_malformed_input_is_4xx(shop: Client, method: str, path: str,
                                      kwargs: dict[str, Any], status: int, code: str) -> None:
    if path != "/login":
        await log_in(shop)
    resp = await shop.request(method, path, **kwargs)
    body = await _json(resp, status)
    assert body["error"] == code and isinstance(body["detail"], str)


async def test_delete_of_any_integer_id_is_fine(shop: Client) -> None:
    await log_in(shop)
    for pid in ("-1", "0", "99999999999999999999"):
        assert (await shop.delete(f"/api/cart/items/{pid}")).status == 200
