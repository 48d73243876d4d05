"""Faults between the gateway and the real new services, end to end.

Real processes: two monolith nodes, one new-services instance, one gateway,
sharing Redis and a SQLite database. The gateway reaches the new instance
only through a ``FaultProxy`` (its ``new.instances`` URL is the proxy's), so
a test can make new act and then lose its answer, and check what the shop's
own database and carts say: one order, one cart line, whatever the network did.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.faultproxy import Fault, FaultProxy, Mode
from tests.support.lifecycle import print_logs_if_failed
from tests.support.shop import Admin, ShopUser, cart_lines
from tests.support.stack import DEFAULT_ROUTES, Stack, db_orders


class FaultStack(Stack):
    """A ``Stack`` whose gateway reaches some new instances through a proxy port."""

    def __init__(self, workdir: Path, redis_url: str, **kwargs: Any) -> None:
        self.fronts: dict[str, int] = {}
        """new instance id -> the port the gateway is told it listens on."""
        super().__init__(workdir, redis_url, **kwargs)
        # Each services process still listens on its own port, whatever config says.
        self.new = {n: self._proc(f"services-{n}",
                                  ["services", "--instance-id", n, "--port", str(p)],
                                  f"http://127.0.0.1:{p}/healthz")
                    for n, p in self.new_ports.items()}

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        for instance in cfg["new"]["instances"]:
            if instance["id"] in self.fronts:
                instance["url"] = f"http://127.0.0.1:{self.fronts[instance['id']]}"
        return cfg


@dataclass
class Faulted:
    stack: FaultStack
    proxy: FaultProxy
    """In front of the only new instance."""
    admin: Admin


@pytest.fixture
async def faulted(request: pytest.FixtureRequest, tmp_path: Path,
                  redis_url: str) -> AsyncIterator[Faulted]:
    routes = getattr(request, "param", None)  # indirect: a test's own routes
    stack = FaultStack(tmp_path / "stack", redis_url, new_instances=1, routes=routes)
    proxy = await FaultProxy(stack.new_ports["n1"]).start()
    stack.fronts["n1"] = proxy.port
    stack.write_config()
    try:
        # start() blocks while it waits for health; the proxy must keep serving meanwhile
        await asyncio.to_thread(stack.start)
        yield Faulted(stack, proxy, Admin(stack.admin_url(), stack.admin_token))
    finally:
        await asyncio.to_thread(stack.stop)
        await proxy.stop()
        print_logs_if_failed(stack, request)


@pytest.mark.parametrize("fault", [Fault(Mode.FORWARD_THEN_RESET),
                                   Fault(Mode.SLOW_HEADERS, delay=30.0)],
                         ids=["forward_then_reset", "slow_headers"])
async def test_a_checkout_with_key_whose_answer_was_lost_is_one_order(faulted: Faulted,
                                                                      fault: Fault) -> None:
    stack, proxy = faulted.stack, faulted.proxy
    async with ShopUser(stack.url()) as user:
        await user.must_login("alice")
        await user.must_add(3, 2)
        assert (await faulted.admin.set_route("checkout", "new")).status == 200

        # new commits the order; its answer is lost, or outlasts the gateway's timeout
        await proxy.apply(fault)
        reply = await user.checkout(key="lost-answer-1")
        assert reply.status in (200, 201), reply.body
        assert reply.backend == "legacy"
        if reply.status == 200:
            assert reply.headers.get("Idempotent-Replayed") == "true"
        assert [(s.target, s.forwarded) for s in proxy.requests] == [("/api/checkout", True)]

        rows = await db_orders(stack.database_url)
        assert [(r["username"], r["placed_by"]) for r in rows] == [("alice", "new")]
        order = reply.body["order"]
        assert order["id"] == rows[0]["id"], "the answer is the order new placed"
        assert {i["product_id"]: i["qty"] for i in order["items"]} == {3: 2}

        await proxy.set(Mode.PASS)
        again = await user.checkout(key="lost-answer-1")
        assert again.status == 200 and again.backend == "new" and again.body == reply.body
        assert cart_lines(await user.cart()) == {}
        assert [o["id"] for o in (await user.orders()).body["orders"]] == [order["id"]]
    assert len(await db_orders(stack.database_url)) == 1


UNSAID = [{k: v for k, v in r.items() if k != "fallback"} for r in DEFAULT_ROUTES]
"""The default routes, but nothing says the backends share an idempotency store."""


@pytest.mark.parametrize("faulted", [UNSAID], indirect=True)
async def test_a_keyed_checkout_whose_answer_was_lost_is_not_replayed_unless_the_store_is_shared(
        faulted: Faulted) -> None:
    stack, proxy = faulted.stack, faulted.proxy
    async with ShopUser(stack.url()) as user:
        await user.must_login("alice")
        await user.must_add(3, 1)
        await faulted.admin.must_set_route("checkout", "new")

        await proxy.set(Mode.FORWARD_THEN_RESET)
        lost = await user.checkout(key="lost-answer-2")
        assert lost.status == 502, lost.body  # the gateway does not guess: new may have acted
        assert lost.headers["Content-Type"].startswith("application/problem+json")
        rows = await db_orders(stack.database_url)
        assert [(r["username"], r["placed_by"]) for r in rows] == [("alice", "new")]

        await proxy.set(Mode.PASS)  # the client retries with its key once new is back
        again = await user.checkout(key="lost-answer-2")
        assert again.status == 200 and again.backend == "new", again.body
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.body["order"]["id"] == rows[0]["id"]
    assert len(await db_orders(stack.database_url)) == 1


async def test_a_checkout_without_key_whose_answer_was_lost_is_not_placed_twice(
        faulted: Faulted) -> None:
    stack, proxy = faulted.stack, faulted.proxy
    async with ShopUser(stack.url()) as user:
        await user.must_login("bob")
        await user.must_add(6, 1)
        await faulted.admin.must_set_route("checkout", "new")

        await proxy.set(Mode.FORWARD_THEN_RESET)
        reply = await user.checkout()
        assert reply.status == 502, reply.body
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        assert reply.body["request_id"] == reply.headers["X-Request-Id"]
        assert proxy.forwarded == 1

        rows = await db_orders(stack.database_url)
        assert [(r["username"], r["placed_by"]) for r in rows] == [("bob", "new")], \
            "new placed it; the gateway must not have placed a second on legacy"
        # what the user finds when they look: the one order, and the cart it emptied
        orders = await user.orders()
        assert [o["id"] for o in orders.body["orders"]] == [rows[0]["id"]]
        assert cart_lines(await user.cart()) == {}


async def test_a_cart_read_that_fails_on_new_is_answered_by_legacy_with_the_same_cart(
        faulted: Faulted) -> None:
    stack, proxy = faulted.stack, faulted.proxy
    async with ShopUser(stack.url()) as user:
        await user.must_login("carol")
        await user.must_add(1, 1)
        await user.must_add(4, 2)
        await faulted.admin.must_set_route("cart", "new")
        assert (await user.cart()).backend == "new"

        await proxy.set(Mode.RESET_BEFORE_RESPONSE)
        got = await user.cart()
        assert got.status == 200 and got.backend == "legacy"
        assert cart_lines(got) == {1: 1, 4: 2}
        assert proxy.hits >= 1 and proxy.forwarded == 1  # only the read that worked


async def test_a_cart_add_whose_answer_was_lost_is_applied_once(faulted: Faulted) -> None:
    stack, proxy = faulted.stack, faulted.proxy
    async with ShopUser(stack.url()) as user:
        await user.must_login("dave")
        await user.must_add(2, 1)
        await faulted.admin.must_set_route("cart", "new")

        await proxy.set(Mode.FORWARD_THEN_RESET)
        lost = await user.add(5, 1)
        assert lost.status == 502, lost.body

        await proxy.set(Mode.PASS)
        on_new = await user.cart()
        assert on_new.backend == "new" and cart_lines(on_new) == {2: 1, 5: 1}
        await faulted.admin.must_set_route("cart", "legacy")
        on_legacy = await user.cart()
        assert on_legacy.backend == "legacy" and cart_lines(on_legacy) == {2: 1, 5: 1}
