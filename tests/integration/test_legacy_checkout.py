"""Checkout on the monolith: the shared idempotency algorithm under real databases."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from legacy_shop.app import create_app
from legacy_shop.db import idempotency_keys, order_items, orders
from legacy_shop.settings import Settings
from legacy_shop.state import ENGINE
from legacy_shop.testing import log_in

Client = TestClient[Any, Any]


@pytest.fixture
async def shop(aiohttp_client: Any, database_url: str) -> Client:
    client: Client = await aiohttp_client(create_app(Settings(database_url=database_url)))
    await log_in(client, "alice")
    return client


def _engine(client: Client) -> AsyncEngine:
    assert client.app is not None
    engine: AsyncEngine = client.app[ENGINE]
    return engine


async def _count(client: Client, table: Any) -> int:
    async with _engine(client).connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def _fill(client: Client, *lines: tuple[int, int]) -> None:
    for product_id, qty in lines:
        resp = await client.post("/api/cart/items", json={"product_id": product_id, "qty": qty})
        assert resp.status == 200


async def test_same_key_twice_places_one_order(shop: Client) -> None:
    await _fill(shop, (1, 2), (4, 1))
    key = {"Idempotency-Key": "order-1"}
    first = await shop.post("/api/checkout", headers=key)
    assert first.status == 201 and "Idempotent-Replayed" not in first.headers
    again = await shop.post("/api/checkout", headers=key)
    assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert await again.read() == await first.read()  # byte for byte
    assert await _count(shop, orders) == 1 and await _count(shop, idempotency_keys) == 1
    assert (await (await shop.get("/api/cart")).json())["items"] == []


async def test_replay_ignores_the_current_cart(shop: Client) -> None:
    await _fill(shop, (2, 1))
    key = {"Idempotency-Key": "k-replay"}
    order = await (await shop.post("/api/checkout", headers=key)).json()
    await _fill(shop, (5, 3))
    again = await shop.post("/api/checkout", headers=key)
    assert again.status == 200 and await again.json() == order
    cart = await (await shop.get("/api/cart")).json()
    assert [(i["product_id"], i["qty"]) for i in cart["items"]] == [(5, 3)]


async def test_same_key_other_body_is_422(shop: Client) -> None:
    await _fill(shop, (3, 1))
    key = {"Idempotency-Key": "k-body"}
    first = await shop.post("/api/checkout", headers=key, json={"note": "a", "gift": False})
    assert first.status == 201
    # The same JSON spelled differently is the same request.
    same = await shop.post("/api/checkout", headers={**key, "Content-Type": "application/json"},
                           data=b'{ "gift" : false, "note" : "a" }')
    assert same.status == 200 and await same.json() == await first.json()
    for other in ({"note": "b", "gift": False}, None):
        resp = await shop.post("/api/checkout", headers=key, json=other)
        assert resp.status == 422
        assert await resp.json() == {
            "error": "idempotency_key_reused",
            "detail": "this Idempotency-Key was used with a different request",
        }
    assert await _count(shop, orders) == 1


async def test_keys_belong_to_a_user(shop: Client, aiohttp_client: Any) -> None:
    await _fill(shop, (1, 1))
    bob: Client = await aiohttp_client(shop.server)
    await log_in(bob, "bob")
    await _fill(bob, (2, 1))
    a = await shop.post("/api/checkout", headers={"Idempotency-Key": "shared"})
    b = await bob.post("/api/checkout", headers={"Idempotency-Key": "shared"})
    assert a.status == b.status == 201
    assert (await a.json())["order"]["id"] != (await b.json())["order"]["id"]


async def test_without_a_key_every_checkout_is_an_order(shop: Client) -> None:
    await _fill(shop, (1, 1))
    assert (await shop.post("/api/checkout")).status == 201
    resp = await shop.post("/api/checkout")
    assert resp.status == 400 and (await resp.json())["error"] == "cart_empty"
    await _fill(shop, (1, 1))
    assert (await shop.post("/api/checkout")).status == 201
    assert await _count(shop, orders) == 2


async def test_empty_cart_with_a_key_leaves_the_key_unused(shop: Client) -> None:
    key = {"Idempotency-Key": "early"}
    assert (await shop.post("/api/checkout", headers=key)).status == 400
    await _fill(shop, (6, 1))
    assert (await shop.post("/api/checkout", headers=key)).status == 201


async def test_rows_record_what_was_sold(shop: Client) -> None:
    await _fill(shop, (7, 3), (8, 1))
    order = (await (await shop.post("/api/checkout")).json())["order"]
    async with _engine(shop).connect() as conn:
        row = (await conn.execute(select(orders).where(orders.c.id == order["id"]))).one()
        items = (await conn.execute(
            select(order_items).where(order_items.c.order_id == order["id"])
            .order_by(order_items.c.product_id)
        )).all()
    assert row.placed_by == "legacy" and row.user_id == 1 and row.total_cents == 3 * 1599 + 899
    assert [(i.product_id, i.name, i.qty, i.unit_price_cents) for i in items] == [
        (7, "Glass Infuser Mug", 3, 1599), (8, "Hourglass Steeping Timer", 1, 899)
    ]
    assert order["total"] == "56.96"


async def test_concurrent_same_key_checkouts_place_one_order(shop: Client) -> None:
    await _fill(shop, (1, 1), (2, 2))
    key = {"Idempotency-Key": "storm"}
    responses = await asyncio.gather(*(shop.post("/api/checkout", headers=key)
                                       for _ in range(10)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 9 + [201]
    bodies = {await r.read() for r in responses}
    assert len(bodies) == 1
    assert await _count(shop, orders) == 1 and await _count(shop, order_items) == 2


async def test_concurrent_same_key_checkouts_across_two_nodes(
    shop: Client, aiohttp_client: Any, database_url: str
) -> None:
    other: Client = await aiohttp_client(create_app(Settings(node_id="b",
                                                             database_url=database_url)))
    await log_in(other, "alice")
    await _fill(shop, (3, 1))
    await _fill(other, (3, 1))
    key = {"Idempotency-Key": "two-nodes"}
    calls = [c.post("/api/checkout", headers=key) for c in (shop, other) for _ in range(5)]
    responses = await asyncio.gather(*calls)
    assert sorted(r.status for r in responses) == [200] * 9 + [201]
    assert len({(await r.json())["order"]["id"] for r in responses}) == 1
    assert await _count(shop, orders) == 1 and await _count(shop, idempotency_keys) == 1


async def test_ui_checkout_double_submit_orders_once(shop: Client) -> None:
    await _fill(shop, (9, 2))
    page = await (await shop.get("/")).text()
    form = _hidden_fields(page, "/ui/checkout")
    first = await shop.post("/ui/checkout", data=form, allow_redirects=False)
    again = await shop.post("/ui/checkout", data=form, allow_redirects=False)
    assert first.status == again.status == 303
    assert first.headers["Location"] == again.headers["Location"]
    assert first.headers["Location"].startswith("/?placed=")
    assert await _count(shop, orders) == 1


def _hidden_fields(page: str, action: str) -> dict[str, str]:
    form = page.split(f'action="{action}"', 1)[1].split("</form>", 1)[0]
    return dict(re.findall(r'type="hidden" name="([a-z_]+)" value="([^"]*)"', form))
