"""Two monolith nodes on one database: data shared, sessions not."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters import wire
from legacy_shop.app import create_app
from legacy_shop.settings import Settings
from legacy_shop.testing import cookie, log_in
from tests.support.checks import expect_response

Client = TestClient[Any, Any]


@pytest.fixture
async def nodes(aiohttp_client: Any, database_url: str, internal_token: str
                ) -> tuple[Client, Client]:
    a: Client = await aiohttp_client(create_app(
        Settings(node_id="a", database_url=database_url, internal_token=internal_token)))
    b: Client = await aiohttp_client(create_app(
        Settings(node_id="b", database_url=database_url, internal_token=internal_token)))
    return a, b


async def test_each_node_says_who_it_is(nodes: tuple[Client, Client]) -> None:
    a, b = nodes
    ha, hb = await (await a.get("/healthz")).json(), await (await b.get("/healthz")).json()
    assert (ha["status"], ha["node"], hb["node"]) == ("ok", "a", "b")
    assert ha["boot_id"] != hb["boot_id"] and int(ha["boot_id"], 16) >= 0


async def test_sessions_stay_on_their_node(nodes: tuple[Client, Client]) -> None:
    a, b = nodes
    sid = await log_in(a, "alice")
    await expect_response(await a.post("/api/cart/items", json={"product_id": 1, "qty": 1}),
                          200, "adding product 1 on a")
    resp = await b.get("/api/cart", headers=cookie(sid))
    assert resp.status == 401
    assert resp.headers[wire.SESSION_REV_HEADER] == "0" and resp.headers[wire.NODE_HEADER] == "b"


async def test_orders_are_shared(nodes: tuple[Client, Client]) -> None:
    a, b = nodes
    await log_in(a, "bob")
    await expect_response(await a.post("/api/cart/items", json={"product_id": 6, "qty": 2}),
                          200, "adding product 6 on a")
    placed = await (await expect_response(await a.post("/api/checkout"), 201,
                                          "checkout on a")).json()
    await log_in(b, "bob")
    assert await (await b.get("/api/orders")).json() == {"orders": [placed["order"]]}


async def test_a_session_moves_through_the_internal_endpoints(
    nodes: tuple[Client, Client], internal_token: str
) -> None:
    """What the gateway does when node a dies: export from a (or Redis), import into b."""
    a, b = nodes
    auth = {wire.INTERNAL_TOKEN_HEADER: internal_token}
    sid = await log_in(a, "carol")
    await expect_response(await a.post("/api/cart/items", json={"product_id": 10, "qty": 3}),
                          200, "adding product 10 on a")
    path = wire.INTERNAL_SESSIONS_PATH.format(sid=sid)
    exported = await (await expect_response(await a.get(path, headers=auth), 200,
                                            "the export from a")).json()
    resp = await b.put(path, headers=auth,
                       json={"data": exported["data"], "expected_revision": 0})
    assert resp.status == 200 and await resp.json() == {"revision": 1}
    cart = await (await b.get("/api/cart", headers=cookie(sid))).json()
    assert [(i["product_id"], i["qty"]) for i in cart["items"]] == [(10, 3)]
    # b keeps the private keys it was given: the page's CSRF token still works there.
    b_export = await (await b.get(path, headers=auth)).json()
    assert b_export["data"]["csrf"] == exported["data"]["csrf"]
