"""Redis goes away, comes back, comes back empty; a legacy node loses its memory.

Each test runs a whole stack against a private redis-server it can hang, kill
and restart. Expected: sessions legacy provably holds keep being served there
(sticky), the others are refused with 503 + Retry-After rather than served
stale, new routes fall back (never anonymously), readiness says degraded, and
everything recovers by itself with nothing lost.
"""

from __future__ import annotations

import pytest

from tests.support.net import await_until
from tests.support.redis_proc import PrivateRedis
from tests.support.shop import Admin, ShopUser, cart_lines
from tests.support.stack import Stack


@pytest.fixture
def redis_url(private_redis: PrivateRedis) -> str:
    """The stack fixture takes the private server instead of the shared one."""
    return private_redis.url


async def _status(admin: Admin) -> str:
    return str((await admin.ready()).body["status"])


async def test_redis_hangs_sessions_legacy_holds_keep_working_the_rest_wait(
        stack: Stack, admin: Admin, private_redis: PrivateRedis) -> None:
    """While Redis hangs, a session is served only where its latest state provably is:
    a user whose cart legacy holds keeps shopping there; a user whose cart is only in
    Redis (written on new) is refused with 503 + Retry-After, never shown a stale cart.
    Both find everything when Redis is back."""
    async with ShopUser(stack.url()) as on_legacy, ShopUser(stack.url()) as on_new:
        assert (await on_legacy.login("alice")).status == 200
        assert (await on_new.login("bob")).status == 200
        added = await on_legacy.add(5, 1)
        assert added.status == 200 and added.backend == "legacy"
        assert (await admin.set_route("cart", "new")).status == 200
        assert (await on_new.must_add(3, 1)).backend == "new"  # only in Redis so far

        private_redis.pause()
        await await_until(lambda: _eq(_store(admin), "down"), timeout=10,
                          what="readyz to report the session store down")
        ready = await admin.ready()
        assert ready.status == 200 and ready.body["status"] == "degraded"

        refused = await on_new.cart()
        assert refused.status == 503 and refused.headers.get("Retry-After"), refused.body
        assert (await on_new.add(7, 1)).status == 503
        seen = await on_legacy.cart()  # new cannot read sessions: legacy, which holds it
        assert seen.status == 200 and seen.backend == "legacy" and cart_lines(seen) == {5: 1}
        added = await on_legacy.add(6, 2)  # the node is now ahead of the store
        assert added.status == 200 and cart_lines(added) == {5: 1, 6: 2}
        me = await on_legacy.me()
        assert me.status == 200 and me.body["user"]["username"] == "alice"

        private_redis.resume()
        await await_until(lambda: _eq(_status(admin), "ready"), timeout=15,
                          what="readyz to recover by itself")
        back = await on_legacy.add(8, 1)  # a write on new, first thing after the outage
        assert back.backend == "new" and cart_lines(back) == {5: 1, 6: 2, 8: 1}, \
            "what legacy did during the outage reached the store before new read it"
        assert cart_lines(await on_new.cart()) == {3: 1}
        await admin.must_set_route("cart", "legacy")
        assert cart_lines(await on_legacy.cart()) == {5: 1, 6: 2, 8: 1}
        assert cart_lines(await on_new.cart()) == {3: 1}


async def test_redis_restarted_empty_users_are_re_migrated_from_their_nodes(
        stack: Stack, admin: Admin, private_redis: PrivateRedis) -> None:
    async with ShopUser(stack.url()) as user:
        await user.must_login("bob")
        await user.must_add(8, 2)  # on legacy (cart starts at legacy)
        private_redis.stop()
        private_redis.start()  # no persistence: every record and flag is gone
        await await_until(lambda: _eq(_status(admin), "ready"), timeout=15,
                          what="gateway back on the empty Redis")
        assert cart_lines(await user.cart()) == {8: 2}
        assert (await admin.set_route("cart", "new")).status == 200
        on_new = await user.cart()
        assert on_new.backend == "new" and cart_lines(on_new) == {8: 2}
        me = await user.me()
        assert me.status == 200 and me.body["user"]["username"] == "bob"


async def test_a_restarted_legacy_node_gets_its_sessions_back_from_redis(stack: Stack) -> None:
    async with ShopUser(stack.url()) as user:
        await user.must_login("carol")
        node = (await user.must_add(11, 1)).upstream
        assert node in stack.legacy
        stack.legacy[node].restart()  # same port, empty memory, new boot id
        cart = await user.cart()
        assert cart.status == 200 and cart_lines(cart) == {11: 1}
        me = await user.me()
        assert me.status == 200 and me.body["user"]["username"] == "carol"
        assert cart_lines(await user.add(12, 1)) == {11: 1, 12: 1}


async def _store(admin: Admin) -> str:
    return str((await admin.ready()).body["session_store"])


async def _eq(value: object, expected: object) -> bool:
    return (await value) == expected  # type: ignore[misc]


@pytest.mark.parametrize("stack", [{"gateways": 2}], indirect=True)
async def test_what_legacy_did_during_an_outage_reaches_new_through_another_gateway(
        stack: Stack, admin: Admin, private_redis: PrivateRedis) -> None:
    """Gateway 0 serves a session from the node that holds it while Redis hangs; the
    node changes it; gateway 0 dies before Redis is back, so it can resync nothing.
    The client's next request, a write routed to new, lands on gateway 1, which never
    saw the session: the dirty sync token makes it resync from the node first."""
    admin1 = Admin(stack.admin_url(1), stack.admin_token)
    async with ShopUser(stack.url(0)) as user:
        assert (await user.login("carol")).status == 200
        assert cart_lines(await user.add(5, 1)) == {5: 1}
        assert cart_lines(await user.cart()) == {5: 1}  # gateway 0 now knows it in sync
        private_redis.pause()
        await await_until(lambda: _eq(_store(admin), "down"), timeout=10,
                          what="gateway 0 to see the session store down")
        during = await user.add(6, 2)
        assert during.status == 200 and cart_lines(during) == {5: 1, 6: 2}
        stack.gateways[0].kill()
        private_redis.resume()
        await await_until(lambda: _eq(_store(admin1), "up"), timeout=15,
                          what="gateway 1 to see Redis again")
        assert (await admin1.set_route("cart", "new")).status == 200
        await await_until(lambda: _eq(_stage(admin1, "cart"), "new"), timeout=10,
                          what="gateway 1 to route cart to new")
        user.base = stack.url(1)
        after = await user.add(7, 1)
        assert after.backend == "new", after.headers
        assert cart_lines(after) == {5: 1, 6: 2, 7: 1}


async def _stage(admin: Admin, route: str) -> str:
    routes = (await admin.routes()).body["routes"]
    return str(next(r["effective"] for r in routes if r["name"] == route))
