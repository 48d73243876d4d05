"""The shadow stage end to end: the real monolith and the real new services, which
answer identically by contract, so shadowing catalog and cart must find them 100 %
consistent -- and asking legacy twice on every request must teach no noise at all.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import aiohttp
import pytest

from tests.support.net import await_until
from tests.support.shop import ShopUser, cart_lines
from tests.support.stack import DEFAULT_ROUTES, Stack

SHADOW = {"noise_sample_rate": 1.0, "noise_threshold": 2}
"""Every shadowed request also goes to legacy twice: the strictest test of 'no spurious noise'."""


def _routes() -> list[dict[str, Any]]:
    routes = copy.deepcopy(DEFAULT_ROUTES)
    for r in routes:
        if r["name"] in ("catalog", "cart"):
            r.update(stage="shadow", shadow=SHADOW)
    return routes


async def _report(stack: Stack, route: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, \
            http.get(f"{stack.admin_url()}/api/routes/{route}/shadow") as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


async def _settled(stack: Stack, route: str, n: int) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        r = await _report(stack, route)
        return r if r["compared"] + r["errors"] + r["skipped"] >= n else None
    found = await await_until(done, timeout=15, what=f"{n} shadow comparisons on {route}")
    assert found is not None
    return found


@pytest.mark.parametrize("stack", [{"routes": _routes()}], indirect=True)
async def test_catalog_and_cart_in_shadow_are_fully_consistent_with_no_spurious_noise(
        stack: Stack) -> None:
    catalog_gets = cart_gets = 0
    async with ShopUser(stack.url()) as alice, ShopUser(stack.url()) as anonymous:
        assert (await alice.login()).status == 200
        for product, qty in ((3, 2), (5, 1)):
            added = await alice.add(product, qty)  # a POST on a shadow route: legacy only
            assert added.status == 200 and added.backend == "legacy"
        for _ in range(5):
            for reply in (await alice.products(), await alice.call("GET", "/api/products/3"),
                          await alice.call("GET", "/api/products/999"),
                          await anonymous.products()):
                assert reply.backend == "legacy"
                catalog_gets += 1
            for reply in (await alice.cart(), await anonymous.cart()):
                assert reply.backend == "legacy"
                cart_gets += 1
        assert cart_lines(await alice.cart()) == {3: 2, 5: 1}
        cart_gets += 1

    reports = {"catalog": await _settled(stack, "catalog", catalog_gets),
               "cart": await _settled(stack, "cart", cart_gets)}
    for route, r in reports.items():
        assert r["errors"] == 0 and r["skipped"] == 0, (route, r)
        assert (r["compared"], r["inconsistent"], r["consistency_rate"]) == (
            {"catalog": catalog_gets, "cart": cart_gets}[route], 0, 1.0), (route, r)
        assert r["top_differences"] == [] and r["diff_log"]["entries"] == [], (route, r)
        noise = r["noise"]
        assert noise["learned"] == [] and noise["candidates"] == [], (route, noise)
        assert noise["samples"] > 0, "legacy was asked twice and agreed with itself"
    assert reports["cart"]["compared"] == cart_gets, "the two POSTs were never shadowed"

    text = await asyncio.to_thread(stack.cli, "shadow", "report", "cart")
    assert text.returncode == 0, text.stderr
    assert "stage shadow" in text.stdout
    assert f"consistency     100.00 %  ({cart_gets} of {cart_gets} compared" in text.stdout
    raw = await asyncio.to_thread(stack.cli, "shadow", "report", "catalog", "--json")
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout)["consistency_rate"] == 1.0
    missing = await asyncio.to_thread(stack.cli, "shadow", "report", "nope")
    assert missing.returncode == 2 and "nope" in missing.stderr
