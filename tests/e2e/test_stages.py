"""Shadow, complete and the kill switch, through a real gateway."""

from __future__ import annotations

import re

import aiohttp

from tests.support.net import await_until
from tests.support.shop import Admin, ShopUser, cart_lines
from tests.support.stack import Stack


async def _metric(stack: Stack, name: str, **labels: str) -> float:
    async with aiohttp.ClientSession() as http, \
            http.get(stack.admin_url() + "/metrics") as resp:
        text = await resp.text()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_shadow_serves_legacy_and_compares_safe_requests_with_new(stack: Stack,
                                                                        admin: Admin) -> None:
    await admin.must_set_route("catalog", "shadow")
    await admin.must_set_route("cart", "shadow")
    async with ShopUser(stack.url()) as user:
        await user.must_login()
        for _ in range(5):
            reply = await user.products()
            assert reply.status == 200 and reply.backend == "legacy"
        added = await user.must_add(3, 1)
        assert added.backend == "legacy"
        assert (await user.cart()).backend == "legacy"

        async def matched() -> bool:
            return await _metric(stack, "strangler_shadow_comparisons_total",
                                 route="catalog", result="match") >= 5
        await await_until(matched, timeout=5, what="shadow comparisons counted")
        assert await _metric(stack, "strangler_shadow_comparisons_total",
                             result="mismatch") == 0
        # the logged-in cart GET was shadowed with the user's identity and matched too;
        # the POST never was (a shadow must not change state)
        await await_until(lambda: _at_least(stack, "cart", 1), timeout=5,
                          what="cart GET shadowed")
        assert await _metric(stack, "strangler_shadow_comparisons_total", route="cart") == 1
        assert cart_lines(await user.cart()) == {3: 1}


async def _at_least(stack: Stack, route: str, n: int) -> bool:
    return await _metric(stack, "strangler_shadow_comparisons_total", route=route,
                         result="match") >= n


async def test_complete_routes_never_fall_back_to_legacy(stack: Stack, admin: Admin) -> None:
    await admin.must_set_route("catalog", "complete")
    async with ShopUser(stack.url()) as user:
        assert (await user.products()).backend == "new"
        for proc in stack.new.values():
            proc.kill()
        reply = await user.products()
        assert reply.status in (502, 503), reply.body
        assert reply.backend is None, "legacy must not serve a complete route"
        assert reply.headers.get("X-Request-Id")


async def test_kill_switch_sends_every_route_to_legacy_and_back(stack: Stack,
                                                                admin: Admin) -> None:
    for route in ("catalog", "cart", "auth"):
        await admin.must_set_route(route, "new")
    async with ShopUser(stack.url()) as user:
        await user.must_login()
        await user.must_add(4, 2)
        assert (await user.cart()).backend == "new"
        assert (await admin.kill(True)).status == 200
        for reply in (await user.cart(), await user.products(), await user.me()):
            assert reply.status == 200 and reply.backend == "legacy"
        assert cart_lines(await user.cart()) == {4: 2}
        assert (await admin.kill(False)).status == 200
        assert (await user.cart()).backend == "new"


async def test_admin_changes_need_the_token(stack: Stack) -> None:
    anonymous = Admin(stack.admin_url(), "wrong-token")
    assert (await anonymous.set_route("cart", "new")).status == 401
    assert (await anonymous.set_route("cart", "new", auth=False)).status == 401
    routes = (await anonymous.routes()).body["routes"]
    assert next(r for r in routes if r["name"] == "cart")["stage"] == "legacy"
