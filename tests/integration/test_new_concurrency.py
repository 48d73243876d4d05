"""Concurrency of the new services: compare-and-set carts, idempotent checkout, many instances."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from adapters.store import session_key
from adapters.wire import IDENTITY_HEADER
from new_services.app import make_app
from new_services.db import make_engine, orders
from tests.integration.test_new_support import Shopper, create_shop_db, log_in, make_settings
from tests.support.keys import KeyPair

Client = TestClient[Any, Any]


@pytest.fixture
async def pair(aiohttp_client: Any, database_url: str, redis_url: str, key_prefix: str,
               keypair: KeyPair, redis_client: aioredis.Redis) -> tuple[Client, Client]:
    """Two instances on the same Redis and database, as behind the gateway."""
    await create_shop_db(database_url)
    clients = []
    for instance in ("n1", "n2"):
        settings = make_settings(database_url, redis_url, key_prefix, keypair,
                                 instance_id=instance)
        clients.append(await aiohttp_client(make_app(settings)))
    return clients[0], clients[1]


async def count_orders(database_url: str, user_id: int) -> int:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            query = select(func.count()).select_from(orders).where(orders.c.user_id == user_id)
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def test_twenty_concurrent_adds_lose_no_update(
    pair: tuple[Client, Client], keypair: KeyPair, redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    shopper = await log_in(pair[0], keypair)
    calls = [shopper.via(pair[i % 2]).call("POST", "/api/cart/items",
                                           json={"product_id": 1 + i % 3, "qty": 1})
             for i in range(20)]
    results = await asyncio.gather(*calls)
    assert [status for status, _ in results] == [200] * 20
    _, cart = await shopper.call("GET", "/api/cart")
    assert {i["product_id"]: i["qty"] for i in cart["items"]} == {1: 7, 2: 7, 3: 6}
    # Login wrote v=1; each add bumped it exactly once, lost races did not.
    assert await redis_client.hget(session_key(key_prefix, shopper.sid), "v") == b"21"


async def test_ten_concurrent_checkouts_with_one_key_place_one_order(
    pair: tuple[Client, Client], keypair: KeyPair, database_url: str,
) -> None:
    shopper = await log_in(pair[0], keypair)
    await shopper.must_call("POST", "/api/cart/items", json={"product_id": 6, "qty": 2})

    async def checkout(client: Client) -> tuple[int, bytes]:
        headers = {IDENTITY_HEADER: shopper.token, "Idempotency-Key": "same-key"}
        async with client.post("/api/checkout", headers=headers) as resp:
            return resp.status, await resp.read()

    results = await asyncio.gather(*(checkout(pair[i % 2]) for i in range(10)))
    assert Counter(status for status, _ in results) == {201: 1, 200: 9}
    assert len({body for _, body in results}) == 1
    assert await count_orders(database_url, shopper.user_id) == 1
    assert (await shopper.call("GET", "/api/cart"))[1]["count"] == 0


async def test_items_added_during_checkout_are_never_lost_nor_ordered_twice(
    pair: tuple[Client, Client], keypair: KeyPair,
) -> None:
    shopper = await log_in(pair[0], keypair)
    for _round in range(5):
        await shopper.must_call("POST", "/api/cart/items", json={"product_id": 1, "qty": 1})
        (status, placed), (added, _) = await asyncio.gather(
            shopper.call("POST", "/api/checkout"),
            shopper.via(pair[1]).call("POST", "/api/cart/items",
                                      json={"product_id": 9, "qty": 1}))
        assert (status, added) == (201, 200)
        _, cart = await shopper.call("GET", "/api/cart")
        ordered = Counter({i["product_id"]: i["qty"] for i in placed["order"]["items"]})
        left = Counter({i["product_id"]: i["qty"] for i in cart["items"]})
        assert ordered + left == Counter({1: 1, 9: 1})
        if left:
            await shopper.must_call("DELETE", "/api/cart/items/9")


async def test_two_instances_serve_one_session_interchangeably(
    pair: tuple[Client, Client], keypair: KeyPair,
) -> None:
    a, b = pair
    on_a = await log_in(a, keypair, "carol")
    on_b = on_a.via(b)
    assert await on_b.call("GET", "/api/me") == (200, {"user": {"id": 3, "username": "carol"}})
    await on_b.must_call("POST", "/api/cart/items", json={"product_id": 8, "qty": 2})
    await on_a.must_call("POST", "/api/cart/items", json={"product_id": 8, "qty": 1})
    assert (await on_b.call("GET", "/api/cart")) == (await on_a.call("GET", "/api/cart"))
    assert (await on_a.call("GET", "/api/cart"))[1]["count"] == 3
    status, placed = await on_b.call("POST", "/api/checkout")
    assert status == 201
    assert await on_a.call("GET", "/api/orders") == (200, {"orders": [placed["order"]]})
    async with b.post("/logout", headers={IDENTITY_HEADER: on_a.token}) as resp:
        assert resp.status == 200
    assert (await on_a.call("GET", "/api/me"))[0] == 401
    assert (await on_b.call("GET", "/api/me"))[0] == 401


async def test_each_shopper_keeps_their_own_cart(
    pair: tuple[Client, Client], keypair: KeyPair,
) -> None:
    shoppers: list[Shopper] = [await log_in(pair[i % 2], keypair, name)
                               for i, name in enumerate(("alice", "bob", "carol", "dave"))]
    await asyncio.gather(*(s.via(pair[(i + 1) % 2]).must_call(
        "POST", "/api/cart/items", json={"product_id": i + 1, "qty": i + 1})
        for i, s in enumerate(shoppers)))
    for i, s in enumerate(shoppers):
        items = (await s.call("GET", "/api/cart"))[1]["items"]
        assert [(it["product_id"], it["qty"]) for it in items] == [(i + 1, i + 1)]
