"""The new services' shop API in-process, on real Redis and real SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from sqlalchemy import insert

from adapters.contracts import ERRORS
from adapters.document import EMPTY, Document, Principal
from adapters.store import session_key
from adapters.wire import IDENTITY_HEADER, SHADOW_HEADER
from new_services.app import make_app
from new_services.db import make_engine, products
from tests.integration.test_new_support import (
    PRODUCTS,
    Shopper,
    create_shop_db,
    log_in,
    make_settings,
    mint,
)
from tests.support.keys import KeyPair

Client = TestClient[Any, Any]


def err(code: str) -> dict[str, str]:
    return {"error": code, "detail": ERRORS[code][1]}


@pytest.fixture
async def client(aiohttp_client: Any, database_url: str, redis_url: str, key_prefix: str,
                 keypair: KeyPair, redis_client: aioredis.Redis) -> Client:
    await create_shop_db(database_url)
    settings = make_settings(database_url, redis_url, key_prefix, keypair)
    return await aiohttp_client(make_app(settings))


async def get_json(client: Client, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with client.get(path, **kwargs) as resp:
        return resp.status, await resp.json()


# ---------------------------------------------------------------- catalog
async def test_products_are_listed_in_id_order(client: Client) -> None:
    status, body = await get_json(client, "/api/products")
    assert status == 200
    assert [p["id"] for p in body["products"]] == list(range(1, 13))
    assert body["products"][0] == {"id": 1, "name": "Product 1",
                                   "description": "Description of product 1", "price": "1.25"}


async def test_one_product(client: Client) -> None:
    status, body = await get_json(client, "/api/products/12")
    assert (status, body) == (200, {"product": {"id": 12, "name": PRODUCTS[11][1],
                                                "description": PRODUCTS[11][2], "price": "12.25"}})


@pytest.mark.parametrize("raw", ["13", "0", "abc", "-1", "1.0", "+1", "%201", "1_0",
                                 "99999999999", "9" * 30, "9" * 40, "%D9%A7"])
async def test_unknown_or_non_integer_product_is_404(client: Client, raw: str) -> None:
    assert await get_json(client, f"/api/products/{raw}") == (404, err("not_found"))


async def test_unknown_route_is_a_json_404(client: Client) -> None:
    assert await get_json(client, "/api/nothing-here") == (404, err("not_found"))


# ---------------------------------------------------------------- login / logout
async def test_login_creates_the_documented_redis_record(
    client: Client, keypair: KeyPair, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    shopper = await log_in(client, keypair, "bob")
    key = session_key(key_prefix, shopper.sid)
    record = {k.decode(): v.decode() for k, v in (await redis_client.hgetall(key)).items()}
    assert record["v"] == "1" and record["lv"] == "0"
    assert record["node"] == "" and record["lrev"] == "0"
    assert json.loads(record["doc"]) == {"schema": 2,
                                         "user": {"id": 2, "name": "bob", "claims": {}},
                                         "fields": {}, "extra": {}}
    assert Document.from_json(record["base"]) == EMPTY
    assert int(record["t"]) > 0
    assert 0 < await redis_client.ttl(key) <= 600


async def test_login_cookie_attributes(client: Client) -> None:
    body = {"username": "alice", "password": "wonderland"}
    async with client.post("/login", json=body) as resp:
        assert resp.status == 200
        assert await resp.json() == {"user": {"id": 1, "username": "alice"}}
        cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("shop_session=")
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "path=/", "samesite=lax"} <= attributes
    assert "secure" not in attributes
    async with client.post("/login", json=body, headers={"X-Forwarded-Proto": "https"}) as resp:
        assert "secure" in resp.headers["Set-Cookie"].lower()


async def test_every_login_gets_a_new_session(client: Client, keypair: KeyPair) -> None:
    first, second = await log_in(client, keypair), await log_in(client, keypair)
    assert first.sid != second.sid


@pytest.mark.parametrize("username,password", [("alice", "wrong"), ("mallory", "wonderland"),
                                               ("", ""), ("a" * 500, "wonderland")])
async def test_bad_credentials_are_401(client: Client, username: str, password: str) -> None:
    async with client.post("/login", json={"username": username, "password": password}) as resp:
        assert resp.status == 401
        assert await resp.json() == err("invalid_credentials")
        assert "Set-Cookie" not in resp.headers


@pytest.mark.parametrize("data", ["{", "[]", '"alice"', "null", '{"username": "alice"}',
                                  '{"username": 1, "password": "x"}',
                                  '{"username": "alice", "password": true}', "\xff"])
async def test_malformed_login_is_400(client: Client, data: str) -> None:
    async with client.post("/login", data=data.encode("latin-1")) as resp:
        assert (resp.status, await resp.json()) == (400, err("bad_request"))


async def test_logout_empties_the_session_and_the_token_stops_working(
    client: Client, keypair: KeyPair, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    shopper = await log_in(client, keypair)
    await add(shopper, 1, 1)
    async with client.post("/logout", headers={IDENTITY_HEADER: shopper.token}) as resp:
        assert (resp.status, await resp.json()) == (200, {"ok": True})
        assert "max-age=0" in resp.headers["Set-Cookie"].lower()
    doc = await redis_client.hget(session_key(key_prefix, shopper.sid), "doc")
    assert doc is not None and Document.from_json(doc) == EMPTY
    for path in ("/api/me", "/api/cart", "/api/orders"):
        assert await shopper.call("GET", path) == (401, err("not_logged_in"))


async def test_login_retires_the_session_it_came_with(
    client: Client, keypair: KeyPair, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    old = await log_in(client, keypair)
    await add(old, 1, 1)
    body = {"username": "alice", "password": "wonderland"}
    async with client.post("/login", json=body, headers={IDENTITY_HEADER: old.token}) as resp:
        assert resp.status == 200
    doc = await redis_client.hget(session_key(key_prefix, old.sid), "doc")
    assert doc is not None and Document.from_json(doc) == EMPTY
    assert (await old.call("GET", "/api/me"))[0] == 401


async def test_login_with_a_bad_token_still_works(client: Client) -> None:
    body = {"username": "alice", "password": "wonderland"}
    async with client.post("/login", json=body, headers={IDENTITY_HEADER: "junk"}) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("form,location", [
    ({"username": "dave", "password": "wonderland"}, "/"),
    ({"username": "dave", "password": "nope"}, "/?error=invalid_credentials"),
    ({"username": "dave"}, "/?error=bad_request"),
])
async def test_a_form_login_is_answered_like_the_monolith(
    client: Client, form: dict[str, str], location: str
) -> None:
    async with client.post("/login", data=form, allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == location
        assert ("Set-Cookie" in resp.headers) is (location == "/")


@pytest.mark.parametrize("headers", [{}, {IDENTITY_HEADER: "garbage"}])
async def test_logout_is_200_without_a_session(client: Client, headers: dict[str, str]) -> None:
    async with client.post("/logout", headers=headers) as resp:
        assert (resp.status, await resp.json()) == (200, {"ok": True})


# ---------------------------------------------------------------- identity
@pytest.mark.parametrize("method,path", [("GET", "/api/me"), ("GET", "/api/cart"),
                                         ("GET", "/api/orders"), ("POST", "/api/checkout"),
                                         ("POST", "/api/cart/items"),
                                         ("DELETE", "/api/cart/items/1")])
async def test_anonymous_requests_are_401(client: Client, method: str, path: str) -> None:
    async with client.request(method, path, json={"product_id": 1, "qty": 1}) as resp:
        assert (resp.status, await resp.json()) == (401, err("not_logged_in"))


async def test_token_for_a_missing_session_is_401(client: Client, keypair: KeyPair) -> None:
    token = mint(keypair, "x" * 43, 1, "alice")
    status, body = await get_json(client, "/api/me", headers={IDENTITY_HEADER: token})
    assert (status, body) == (401, err("not_logged_in"))


async def test_token_naming_someone_elses_session_is_401(client: Client, keypair: KeyPair) -> None:
    alice = await log_in(client, keypair, "alice")
    forged = mint(keypair, alice.sid, 2, "bob")  # a valid signature, but not bob's session
    status, body = await get_json(client, "/api/cart", headers={IDENTITY_HEADER: forged})
    assert (status, body) == (401, err("not_logged_in"))


@pytest.mark.parametrize("sub", ["alice", "01", "1.0", "-1", " 1", "\u0661"])
async def test_a_token_whose_sub_is_no_user_id_of_the_shop_is_401(
    client: Client, keypair: KeyPair, sub: str
) -> None:
    alice = await log_in(client, keypair, "alice")
    token = {IDENTITY_HEADER: mint(keypair, alice.sid, sub, "alice")}
    for method, path in (("GET", "/api/me"), ("GET", "/api/cart"), ("GET", "/api/orders"),
                         ("POST", "/api/checkout")):
        async with client.request(method, path, headers=token) as resp:
            assert (resp.status, await resp.json()) == (401, err("not_logged_in"))
    async with client.post("/logout", headers=token) as resp:
        assert resp.status == 200
    assert (await alice.call("GET", "/api/me"))[0] == 200  # that logout touched nothing


async def test_a_bad_token_is_never_anonymous(client: Client) -> None:
    status, body = await get_json(client, "/api/me", headers={IDENTITY_HEADER: "a.b.c"})
    assert (status, body) == (401, err("not_logged_in"))


# ---------------------------------------------------------------- cart
async def test_cart_flow(client: Client, keypair: KeyPair) -> None:
    shopper = await log_in(client, keypair)
    assert await shopper.call("GET", "/api/me") == (200, {"user": {"id": 1, "username": "alice"}})
    assert await shopper.call("GET", "/api/cart") == (
        200, {"items": [], "count": 0, "total": "0.00"})
    await add(shopper, 3, 1)
    await add(shopper, 1, 2)
    status, cart = await shopper.call("POST", "/api/cart/items", json={"product_id": 1, "qty": 1})
    assert status == 200
    assert cart == {"items": [
        {"product_id": 1, "name": "Product 1", "qty": 3, "unit_price": "1.25",
         "line_total": "3.75"},
        {"product_id": 3, "name": "Product 3", "qty": 1, "unit_price": "3.25",
         "line_total": "3.25"}], "count": 4, "total": "7.00"}
    assert await shopper.call("GET", "/api/cart") == (200, cart)
    status, cart = await shopper.call("DELETE", "/api/cart/items/1")
    assert (status, cart["count"], cart["total"]) == (200, 1, "3.25")
    assert (await shopper.call("DELETE", "/api/cart/items/7"))[1] == cart  # absent line is fine
    assert (await shopper.call("DELETE", "/api/cart/items/-7"))[1] == cart  # an integer too
    assert (await shopper.call("DELETE", f"/api/cart/items/{10**20}"))[1] == cart
    assert await shopper.call("DELETE", "/api/cart/items/x") == (404, err("not_found"))


@pytest.mark.parametrize("data", [
    "{", "[1]", "1", '{"product_id": 1}', '{"qty": 1}', '{"product_id": 1, "qty": 0}',
    '{"product_id": 1, "qty": 101}', '{"product_id": 1, "qty": -1}',
    '{"product_id": 1, "qty": "1"}', '{"product_id": 1, "qty": 1.0}',
    '{"product_id": 1, "qty": true}', '{"product_id": true, "qty": 1}',
    '{"product_id": "1", "qty": 1}', '{"product_id": null, "qty": 1}', "",
])
async def test_malformed_cart_items_are_400(client: Client, keypair: KeyPair, data: str) -> None:
    shopper = await log_in(client, keypair)
    assert await shopper.call("POST", "/api/cart/items", data=data) == (400, err("bad_request"))
    assert (await shopper.call("GET", "/api/cart"))[1]["count"] == 0


@pytest.mark.parametrize("product_id", [13, 0, -5, 2**31, 10**30])
async def test_unknown_product_is_404(client: Client, keypair: KeyPair, product_id: int) -> None:
    shopper = await log_in(client, keypair)
    body = {"product_id": product_id, "qty": 1}
    assert await shopper.call("POST", "/api/cart/items", json=body) == (
        404, err("product_not_found"))


async def test_qty_bounds_are_inclusive(client: Client, keypair: KeyPair) -> None:
    shopper = await log_in(client, keypair)
    for qty in (1, 100):
        assert (await shopper.call("POST", "/api/cart/items",
                                   json={"product_id": 2, "qty": qty}))[0] == 200
    assert (await shopper.call("GET", "/api/cart"))[1]["count"] == 101


# ---------------------------------------------------------------- checkout / orders
async def add(shopper: Shopper, product_id: int, qty: int) -> None:
    await shopper.must_call("POST", "/api/cart/items",
                            json={"product_id": product_id, "qty": qty})


async def test_checkout_places_an_order_and_empties_the_cart(
    client: Client, keypair: KeyPair
) -> None:
    shopper = await log_in(client, keypair)
    await add(shopper, 2, 2)
    await add(shopper, 5, 1)
    status, body = await shopper.call("POST", "/api/checkout")
    assert status == 201
    order = body["order"]
    assert order["status"] == "placed" and order["total"] == "9.75"
    assert [(i["product_id"], i["qty"]) for i in order["items"]] == [(2, 2), (5, 1)]
    assert order["created_at"].endswith("Z") and len(order["created_at"]) == 20
    assert (await shopper.call("GET", "/api/cart"))[1]["count"] == 0
    await add(shopper, 1, 1)
    second = (await shopper.call("POST", "/api/checkout"))[1]["order"]
    assert await shopper.call("GET", "/api/orders") == (200, {"orders": [second, order]})


async def test_orders_are_per_user(client: Client, keypair: KeyPair) -> None:
    alice, bob = await log_in(client, keypair, "alice"), await log_in(client, keypair, "bob")
    await add(alice, 1, 1)
    assert (await alice.call("POST", "/api/checkout"))[0] == 201
    assert await bob.call("GET", "/api/orders") == (200, {"orders": []})


async def test_checkout_of_an_empty_cart_is_400(client: Client, keypair: KeyPair) -> None:
    shopper = await log_in(client, keypair)
    assert await shopper.call("POST", "/api/checkout") == (400, err("cart_empty"))


async def test_checkout_replays_the_same_key(client: Client, keypair: KeyPair) -> None:
    shopper = await log_in(client, keypair)
    await add(shopper, 4, 3)
    headers = {"Idempotency-Key": "order-1"}
    async with shopper.client.post("/api/checkout", json={"note": "x"},
                                   headers={IDENTITY_HEADER: shopper.token, **headers}) as resp:
        assert resp.status == 201 and "Idempotent-Replayed" not in resp.headers
        first = await resp.read()
    await add(shopper, 4, 1)  # added after the order: must survive the replay untouched
    async with shopper.client.post("/api/checkout", data=b'{ "note" :"x"}',
                                   headers={IDENTITY_HEADER: shopper.token, **headers}) as resp:
        assert resp.status == 200 and resp.headers["Idempotent-Replayed"] == "true"
        assert await resp.read() == first
    assert (await shopper.call("GET", "/api/cart"))[1]["count"] == 1
    assert len((await shopper.call("GET", "/api/orders"))[1]["orders"]) == 1
    assert await shopper.call("POST", "/api/checkout", json={"note": "y"}, headers=headers) == (
        422, err("idempotency_key_reused"))
    assert await shopper.call("POST", "/api/checkout", headers=headers) == (
        422, err("idempotency_key_reused"))


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\there"])
async def test_invalid_idempotency_keys_are_400(client: Client, keypair: KeyPair,
                                                key: str) -> None:
    shopper = await log_in(client, keypair)
    await add(shopper, 1, 1)
    assert await shopper.call("POST", "/api/checkout", headers={"Idempotency-Key": key}) == (
        400, err("invalid_idempotency_key"))


async def test_longest_idempotency_key_is_fine(client: Client, keypair: KeyPair) -> None:
    shopper = await log_in(client, keypair)
    await add(shopper, 1, 1)
    headers = {"Idempotency-Key": "~" * 255}
    assert (await shopper.call("POST", "/api/checkout", headers=headers))[0] == 201


@pytest.mark.parametrize("data", [b"{nope", b" ", "{}".encode("utf-16")])
async def test_checkout_with_a_non_json_body_is_400(client: Client, keypair: KeyPair,
                                                    data: bytes) -> None:
    shopper = await log_in(client, keypair)
    await add(shopper, 1, 1)
    assert await shopper.call("POST", "/api/checkout", data=data) == (400, err("bad_request"))
    assert (await shopper.call("GET", "/api/cart"))[1]["count"] == 1


async def test_an_order_too_big_for_the_schema_is_400_not_500(
    client: Client, keypair: KeyPair, database_url: str
) -> None:
    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(insert(products).values(id=99, name="Yacht", description="big",
                                                   price_cents=2**31 - 1))
    await engine.dispose()
    shopper = await log_in(client, keypair)
    await add(shopper, 99, 2)
    assert await shopper.call("POST", "/api/checkout") == (400, err("bad_request"))
    assert await shopper.call("GET", "/api/orders") == (200, {"orders": []})


async def test_what_only_the_monolith_knows_survives_shopping_on_new(
    client: Client, keypair: KeyPair, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """A session the gateway brought over from the monolith: its private keys, fields new
    does not model and the user's further claims go back to it untouched."""
    shopper = await log_in(client, keypair, "alice")
    key = session_key(key_prefix, shopper.sid)
    extra = {"csrf": "t0k", "created_at": "2026-01-02T03:04:05Z", "last_viewed_product": 3}
    pulled = Document(Principal(1, "alice", {"tier": "gold"}),
                      {"cart": {"3": 1}, "settled": [900], "wishlist": ["kettle"]}, extra)
    await redis_client.hset(key, "doc", pulled.to_json())
    await add(shopper, 3, 1)
    await add(shopper, 2, 1)
    order = (await shopper.call("POST", "/api/checkout"))[1]["order"]
    await add(shopper, 5, 1)
    raw = await redis_client.hget(key, "doc")
    assert raw is not None and Document.from_json(raw) == Document(
        Principal(1, "alice", {"tier": "gold"}),
        {"cart": {"5": 1}, "settled": sorted([900, order["id"]]), "wishlist": ["kettle"]}, extra)


# ---------------------------------------------------------------- shadow, health
async def test_shadow_copies_read_but_never_write(client: Client, keypair: KeyPair) -> None:
    shopper = await log_in(client, keypair)
    shadow = {SHADOW_HEADER: "1"}
    assert (await shopper.call("GET", "/api/cart", headers=shadow))[0] == 200
    for method, path in (("POST", "/api/cart/items"), ("DELETE", "/api/cart/items/1"),
                         ("POST", "/api/checkout"), ("POST", "/login"), ("POST", "/logout")):
        status, body = await shopper.call(method, path, headers=shadow,
                                          json={"product_id": 1, "qty": 1})
        assert status == 409 and body["error"] == "shadow_write_refused"
    assert (await shopper.call("GET", "/api/me"))[0] == 200  # the shadow logout did nothing
    assert (await shopper.call("GET", "/api/cart"))[1]["count"] == 0


async def test_health_and_readiness(client: Client) -> None:
    assert await get_json(client, "/healthz") == (200, {"status": "ok", "instance": "n1"})
    status, body = await get_json(client, "/readyz")
    assert status == 200 and body["redis"] and body["db"]
    async with client.head("/api/products") as resp:
        assert resp.status == 200


async def test_request_id_is_echoed_or_made(client: Client) -> None:
    async with client.get("/healthz", headers={"X-Request-Id": "abc-123"}) as resp:
        assert resp.headers["X-Request-Id"] == "abc-123"
    async with client.get("/healthz", headers={"X-Request-Id": "bad\u00e9id"}) as resp:
        assert resp.headers["X-Request-Id"] != "bad\u00e9id"
