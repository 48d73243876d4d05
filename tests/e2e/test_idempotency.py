"""One Idempotency-Key, one order: whichever backend answers, however often retried."""

from __future__ import annotations

import asyncio

from tests.support.checks import expect
from tests.support.shop import Admin, ShopUser
from tests.support.stack import Stack, db_orders


async def test_a_key_replays_the_same_order_on_either_backend(stack: Stack,
                                                              admin: Admin) -> None:
    async with ShopUser(stack.url()) as user:
        await user.must_login("alice")
        await user.must_add(2, 2)
        first = await user.checkout("order-42")
        assert first.status == 201 and first.backend == "legacy"

        await admin.must_set_route("checkout", "new")
        on_new = await user.checkout("order-42")
        assert on_new.backend == "new"
        assert on_new.status == 200 and on_new.body == first.body
        assert on_new.headers.get("Idempotent-Replayed") == "true"

        await admin.must_set_route("checkout", "legacy")
        retries = await asyncio.gather(*(user.checkout("order-42") for _ in range(5)))
        assert {r.status for r in retries} == {200}
        assert all(r.body == first.body for r in retries)
    rows = await db_orders(stack.database_url)
    assert len(rows) == 1


async def test_concurrent_retries_across_backends_make_one_order(stack: Stack,
                                                                 admin: Admin) -> None:
    async with ShopUser(stack.url()) as user:
        await user.must_login("bob")
        await user.must_add(6, 1)
        await admin.must_set_route("checkout", "canary", 50)
        # the same key from two tabs while the flag flips under them
        flips = [admin.set_route("checkout", s) for s in ("new", "legacy", "new")]
        tries = [user.checkout("double-click") for _ in range(6)]
        results = await asyncio.gather(*tries, *flips)
        replies = results[:6]
        for flip in results[6:]:
            expect(flip, 200, "a flip of checkout")
        assert sorted(r.status for r in replies).count(201) == 1, [r.status for r in replies]
        assert {r.status for r in replies} <= {200, 201}
        assert len({r.body["order"]["id"] for r in replies}) == 1
    assert len(await db_orders(stack.database_url)) == 1


async def test_a_key_reused_with_a_different_body_is_refused_on_both_sides(
        stack: Stack, admin: Admin) -> None:
    async with ShopUser(stack.url()) as user:
        await user.must_login("carol")
        await user.must_add(1, 1)
        placed = await user.call("POST", "/api/checkout", {"note": "front door"},
                                 headers={"Idempotency-Key": "k-1"})
        assert placed.status == 201 and placed.backend == "legacy"
        other = await user.call("POST", "/api/checkout", {"note": "back door"},
                                headers={"Idempotency-Key": "k-1"})
        assert other.status == 422 and other.body["error"] == "idempotency_key_reused"
        await admin.must_set_route("checkout", "new")
        other_new = await user.call("POST", "/api/checkout", {"note": "back door"},
                                    headers={"Idempotency-Key": "k-1"})
        assert other_new.status == 422 and other_new.backend == "new"
        same_new = await user.call("POST", "/api/checkout", {"note": "front door"},
                                   headers={"Idempotency-Key": "k-1"})
        assert same_new.status == 200 and same_new.body == placed.body
    assert len(await db_orders(stack.database_url)) == 1
