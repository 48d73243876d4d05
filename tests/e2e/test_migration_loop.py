"""The v1 migration loop, end to end, with real processes.

Each test starts two legacy nodes, two new-service instances and a gateway,
moves routes with the admin API or the CLI, and checks what a user would:
still logged in, same cart, exactly the orders placed.
"""

from __future__ import annotations

import re

import aiohttp
import pytest

from tests.support.net import await_until
from tests.support.shop import Admin, ShopUser, cart_lines
from tests.support.stack import Stack, db_orders


async def test_a_flip_cart_and_checkout_to_new_keeps_user_and_cart(stack: Stack,
                                                                    admin: Admin) -> None:
    async with ShopUser(stack.url()) as user:
        assert (await user.login()).status == 200
        assert (await user.must_add(3, 2)).backend == "legacy"
        assert (await user.add(5, 1)).status == 200
        before = await user.cart()
        assert before.backend == "legacy" and cart_lines(before) == {3: 2, 5: 1}

        assert (await admin.set_route("cart", "new")).status == 200
        assert (await admin.set_route("checkout", "new")).status == 200

        me = await user.me()
        assert me.status == 200 and me.body["user"]["username"] == "alice"
        after = await user.cart()
        assert after.backend == "new"
        assert after.body == before.body

        placed = await user.checkout(key="order-a-1")
        assert placed.status == 201 and placed.backend == "new"
        assert {i["product_id"]: i["qty"] for i in placed.body["order"]["items"]} == {3: 2, 5: 1}
        again = await user.checkout(key="order-a-1")
        assert again.status == 200 and again.body == placed.body

        emptied = await user.cart()
        assert emptied.backend == "new" and emptied.body["items"] == []
        orders = await user.orders()
        assert orders.backend == "legacy"
        assert [o["id"] for o in orders.body["orders"]] == [placed.body["order"]["id"]]
    rows = await db_orders(stack.database_url)
    assert [(r["username"], r["placed_by"]) for r in rows] == [("alice", "new")]


async def test_b_items_added_on_new_are_on_legacy_after_flipping_back(stack: Stack,
                                                                      admin: Admin) -> None:
    async with ShopUser(stack.url()) as user:
        await user.must_login("bob")
        await user.must_add(1, 1)
        await admin.must_set_route("cart", "new")
        assert (await user.must_add(2, 3)).backend == "new"
        assert (await user.must_add(1, 1)).backend == "new"
        assert (await user.remove(1)).status == 200
        assert cart_lines(await user.add(4, 1)) == {2: 3, 4: 1}

        await admin.must_set_route("cart", "legacy")
        back = await user.cart()
        assert back.backend == "legacy"
        assert cart_lines(back) == {2: 3, 4: 1}
        # and legacy keeps working on the same session
        assert cart_lines(await user.add(2, 1)) == {2: 4, 4: 1}
        assert (await user.me()).body["user"]["username"] == "bob"


async def test_c_killing_the_legacy_node_keeps_the_user_logged_in(stack: Stack) -> None:
    async with ShopUser(stack.url()) as user:
        await user.must_login("carol")
        added = await user.must_add(7, 2)
        holder = added.upstream
        assert holder in stack.legacy
        stack.legacy[holder].kill()

        cart = await user.cart()
        assert cart.status == 200, cart.body
        assert cart.upstream != holder and cart.backend == "legacy"
        assert cart_lines(cart) == {7: 2}
        me = await user.me()
        assert me.status == 200 and me.body["user"]["username"] == "carol"
        # the surviving node now holds it and keeps serving it
        assert cart_lines(await user.add(8, 1)) == {7: 2, 8: 1}
        assert (await user.cart()).upstream == cart.upstream


async def test_d_new_instances_down_gets_fall_back_posts_are_not_replayed(
        stack: Stack, admin: Admin) -> None:
    async with ShopUser(stack.url()) as user:
        await user.must_login("dave")
        await user.must_add(2, 1)
        for route in ("cart", "catalog", "checkout"):
            await admin.must_set_route(route, "new")
        assert (await user.cart()).backend == "new"

        for proc in stack.new.values():
            proc.pause()  # hung, not refused: a request sent now has reached new
        posted = await user.add(6, 1)  # no Idempotency-Key: must not be replayed on legacy
        assert posted.status == 504, posted.body
        got = await user.cart()  # a GET is safe: it falls back to legacy
        assert got.status == 200 and got.backend == "legacy"
        assert cart_lines(got) == {2: 1}, "the timed-out POST must not have been replayed"
        products = await user.products()
        assert products.status == 200 and products.backend == "legacy"

        placed = await user.checkout(key="dave-1")  # a key makes a retry safe
        assert placed.status == 201 and placed.backend == "legacy"

        for proc in stack.new.values():
            proc.kill()  # now refused: even a POST provably never reached new
        added = await user.add(9, 1)
        assert added.status == 200 and added.backend == "legacy"
        assert cart_lines(added) == {9: 1}
    rows = await db_orders(stack.database_url)
    assert [(r["username"], r["placed_by"]) for r in rows] == [("dave", "legacy")]


@pytest.mark.parametrize("stack", [{"gateways": 1}], indirect=True)
async def test_e_canary_is_sticky_per_session_and_near_its_percentage(stack: Stack,
                                                                      admin: Admin) -> None:
    import asyncio

    await admin.must_set_route("cart", "canary", 30)
    users = [ShopUser(stack.url()) for _ in range(200)]
    names = ("alice", "bob", "carol", "dave")
    try:
        sem = asyncio.Semaphore(16)
        # Logins four at a time: argon2 is deliberately slow, and 16 at once on a busy
        # 2-core machine can outlast the stack's 2 s request timeout.
        login_gate = asyncio.Semaphore(4)

        async def login(i: int, u: ShopUser) -> None:
            async with login_gate:
                await u.must_login(names[i % 4])

        await asyncio.gather(*(login(i, u) for i, u in enumerate(users)))
        assert len({u.session_id for u in users}) == 200

        async def sides(u: ShopUser) -> set[str]:
            seen = set()
            for _ in range(50):
                async with sem:
                    reply = await u.cart()
                assert reply.status == 200
                seen.add(reply.backend or "?")
            return seen

        results = await asyncio.gather(*(sides(u) for u in users))
    finally:
        await asyncio.gather(*(u.close() for u in users))
    assert all(len(s) == 1 for s in results), "a session changed sides at a fixed percentage"
    on_new = sum(1 for s in results if s == {"new"})
    # Binomial(200, 0.3): mean 60, sd 6.5. Four sd either way: a broken percentage (0, 50,
    # 100 %) still fails; chance alone (79 was seen once in a full run) does not.
    assert 34 <= on_new <= 86, f"{on_new}/200 sessions on new at 30%"
    # 10,000 cart reads, one SDK evaluation per session: the rest are memoised.
    async with aiohttp.ClientSession() as http, \
            http.get(stack.admin_url() + "/metrics") as resp:
        text = await resp.text()
    evaluations = {m[0]: float(m[1]) for m in re.findall(
        r'^strangler_flag_evaluations_total\{result="(in|out)",route="cart"\} (\S+)$', text,
        re.MULTILINE)}
    assert evaluations == {"in": on_new, "out": 200 - on_new}, evaluations


@pytest.mark.parametrize("stack", [{"gateways": 2}], indirect=True)
async def test_f_flips_reach_a_second_gateway_within_a_second(stack: Stack, admin: Admin) -> None:
    second = Admin(stack.admin_url(1), stack.admin_token)

    async def stage_on_second(route: str) -> str:
        routes = (await second.routes()).body["routes"]
        return next(r["stage"] for r in routes if r["name"] == route)

    assert (await admin.set_route("cart", "new")).status == 200
    await await_until(lambda: _is(stage_on_second("cart"), "new"), timeout=1.0,
                      what="admin-API flip on gateway 2")

    result = stack.cli("flags", "set", "catalog", "canary", "--percent", "40")
    assert result.returncode == 0, result.stderr
    await await_until(lambda: _is(stage_on_second("catalog"), "canary"), timeout=1.0,
                      what="CLI flip on gateway 2")

    async with ShopUser(stack.url(1)) as user:
        await user.must_login()
        assert (await user.cart()).backend == "new"


async def _is(value: object, expected: str) -> bool:
    return (await value) == expected  # type: ignore[misc]
