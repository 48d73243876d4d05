"""The admin dashboard in a real browser, against a real stack under real traffic.

Debian's headless Chromium (``/usr/bin/chromium``; ``make prereqs`` installs the
``chromium`` package when it is missing) driven by Playwright for Python with
that executable -- Playwright's own browser downloads are never used. Nothing
skips without a browser: a missing one is a failure.

Shop users log in and read their carts in the background while an operator,
on the page, first with a wrong token (refused, shown, nothing changes), then
with the right one moves ``cart`` to new with a reason, watches the live split
move to new and the ledger name them, then pulls the kill switch and watches
the split go back to legacy. The page is served under a strict CSP and asks
for nothing outside the admin origin. Every wait has a deadline; none sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.support.shop import ShopUser, cart_lines
from tests.support.stack import DEFAULT_ROUTES, Stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
OPS_NAME = "dana-oncall"
OPS_TOKEN = secrets.token_urlsafe(24)
REASON = f"cutover from the dashboard {secrets.token_hex(3)}"
DEADLINE_MS = 25_000
expect.set_options(timeout=DEADLINE_MS)  # a loaded CI box: flag push + a 1.5 s page refresh


def _routes() -> list[dict[str, object]]:
    routes = [dict(r) for r in DEFAULT_ROUTES]
    next(r for r in routes if r["name"] == "cart")["pin"] = True  # the pins column has a figure
    return routes


STACK = {"routes": _routes(),
         "gateway_overrides": {"admin_tokens": [{"name": OPS_NAME, "env": "STRANGLER_OPS_TOKEN"}]},
         "extra_env": {"STRANGLER_OPS_TOKEN": OPS_TOKEN}}


class Shoppers:
    """Logged-in shop users reading their carts in the background: paced, bounded in time."""

    def __init__(self, base_url: str, users: tuple[str, ...] = ("alice", "bob", "carol"),
                 pace_s: float = 0.1, limit_s: float = 180.0) -> None:
        self.users = {name: ShopUser(base_url) for name in users}
        self.pace_s = pace_s
        self.deadline = time.monotonic() + limit_s
        self.replies: Counter[tuple[int, str | None]] = Counter()
        self.wrong_carts: list[tuple[str, object]] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Shoppers:
        for i, (name, user) in enumerate(self.users.items()):
            assert (await user.login(name)).status == 200
            assert (await user.add(i + 1, 2)).status == 200
        self._tasks = [asyncio.create_task(self._shop(name, user))
                       for name, user in self.users.items()]
        return self

    async def _shop(self, name: str, user: ShopUser) -> None:
        expected = {list(self.users).index(name) + 1: 2}
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            reply = await user.cart()
            self.replies[(reply.status, reply.backend)] += 1
            if reply.status != 200 or cart_lines(reply) != expected:
                self.wrong_carts.append((name, reply.body))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.pace_s)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        for user in self.users.values():
            await user.close()


@contextlib.asynccontextmanager
async def chromium_page() -> AsyncIterator[Page]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("headless Chromium is needed: apt-get install -y chromium "
                    "(make prereqs does it)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                           headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1360, "height": 900})
            page.set_default_timeout(DEADLINE_MS)
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("console", lambda msg: problems.append(f"console: {msg.text}")
                    if msg.type == "error" and "401" not in msg.text else None)
            yield page
            assert not problems, problems
        finally:
            await browser.close()


async def _cart_share(page: Page, low: int, high: int, what: str) -> int:
    """Wait (deadline, no sleep) until the cart row's split bar reads low..high % new.

    The bar's label is what the operator sees ("now 20 % legacy / 80 % new").
    """
    try:
        handle = await page.wait_for_function(
            """([low, high]) => {
                 const bar = document.querySelector('tr[data-route="cart"] .bar');
                 const m = /^now (\\d+) % legacy \\/ (\\d+) % new$/.exec(
                     bar?.getAttribute("aria-label") || "");
                 return m && Number(m[2]) >= low && Number(m[2]) <= high ? [Number(m[2])] : null;
               }""",
            arg=[low, high], timeout=DEADLINE_MS, polling=100)
    except Exception as exc:
        shown = await page.locator('tr[data-route="cart"]').inner_text()
        label = await page.locator('tr[data-route="cart"] .bar').get_attribute("aria-label")
        raise AssertionError(f"the page never showed {what}; the cart row reads {shown!r}, "
                             f"its split bar {label!r}") from exc
    [share] = await handle.json_value()
    return int(share)


async def _admin_get(stack: Stack, path: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http, \
            http.get(stack.admin_url() + path) as resp:
        assert resp.status == 200, (path, resp.status)
        body: dict[str, Any] = await resp.json()
        return body


def _shot_path(tmp_path: Path) -> Path:
    return Path(os.environ.get("STRANGLER_DASHBOARD_SHOT", tmp_path / "dashboard.png"))


@pytest.mark.parametrize("stack", [STACK], indirect=True)
async def test_an_operator_moves_cart_to_new_and_back_from_the_page(stack: Stack,
                                                                    tmp_path: Path) -> None:
    async with Shoppers(stack.url()) as shoppers, chromium_page() as page:
        requested: list[str] = []
        page.on("request", lambda req: requested.append(req.url))
        response = await page.goto(stack.admin_url() + "/")
        assert response is not None and response.ok
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "unsafe-inline" not in csp, csp
        cart = page.locator('tr[data-route="cart"]')
        cells = cart.locator("td")
        await expect(cells.nth(1)).to_have_text("legacy")
        await expect(cells.nth(2)).to_have_text("0")
        assert await _cart_share(page, 0, 0, "cart traffic, all on legacy") == 0
        await expect(cart.locator(".figures")).to_have_text(
            re.compile(r"^legacy \d.*/s · new 0\.0/s$"))
        await expect(cells.nth(4)).to_have_text("0 %")  # 5xx share
        await expect(cells.nth(5)).to_have_text(re.compile(r"^\d+(\.\d)? ms$"))  # p99
        await expect(cells.nth(6)).to_have_text("closed")  # breaker
        await expect(page.locator('tr[data-route="default"]')).to_contain_text("legacy only")
        await expect(page.locator("#ledger-msg")).to_have_text("No changes recorded yet.")
        before = await _admin_get(stack, "/api/routes")

        # a change without the right token is refused, the page says so, and nothing moves
        await page.get_by_label("Admin token").fill("not-the-token")
        await page.get_by_label("stage for cart").select_option("new")
        await page.get_by_role("button", name="apply stage change to cart").click()
        await expect(page.locator("#msg")).to_contain_text("Move cart to new failed: 401")
        await page.get_by_role("button", name="Pull kill switch").click()
        await expect(page.locator("#msg")).to_contain_text("Pull the kill switch failed: 401")
        assert await _admin_get(stack, "/api/routes") == before
        assert (await _admin_get(stack, "/api/ledger"))["entries"] == []
        await expect(cells.nth(1)).to_have_text("legacy")
        await expect(page.locator("#kill-banner")).to_contain_text("off")
        assert await _cart_share(page, 0, 0, "cart still all on legacy") == 0

        # the real token, a reason, and the move
        await page.get_by_label("Admin token").fill(OPS_TOKEN)
        await page.get_by_label("Reason for the change").fill(REASON)
        await page.get_by_label("stage for cart").select_option("new")
        await page.get_by_role("button", name="apply stage change to cart").click()
        await expect(page.locator("#msg")).to_contain_text("Move cart to new: done")
        await expect(page.get_by_label("Reason for the change")).to_have_value("")
        await expect(cells.nth(1)).to_have_text("new")
        assert await _cart_share(page, 95, 100, "cart's split moved to new") >= 95
        await expect(cart.locator(".figures")).to_contain_text("/s · new ")

        entry = page.locator("#ledger tr").filter(has_text="cart: legacy → new")
        await expect(entry).to_have_count(1)
        await expect(entry).to_contain_text(OPS_NAME)
        await expect(entry).to_contain_text(REASON)
        await expect(entry).to_contain_text("admin-api")
        await expect(cells.nth(7)).to_have_text(re.compile(r"^[1-9]\d*$"))  # sessions pinned

        # the token lives in this tab's sessionStorage only: not in the URL, not in localStorage
        stored = await page.evaluate(
            "() => [localStorage.length, sessionStorage.getItem('strangler-admin-token')]")
        assert stored == [0, OPS_TOKEN]
        assert OPS_TOKEN not in page.url
        await page.screenshot(path=str(_shot_path(tmp_path)), full_page=True)

        # the kill switch, pulled from the page, sends cart back to legacy at once
        await page.get_by_label("Reason for the change").fill("rollback drill")
        await page.get_by_role("button", name="Pull kill switch").click()
        await expect(page.locator("#kill-banner")).to_contain_text("ON")
        await expect(cells.nth(1)).to_have_text("legacy (kill switch)")
        assert await _cart_share(page, 0, 5, "cart's split back on legacy") <= 5
        kill_entry = page.locator("#ledger tr").filter(has_text="kill switch on")
        await expect(kill_entry).to_contain_text(OPS_NAME)
        await expect(kill_entry).to_contain_text("rollback drill")
        await expect(page.get_by_role("button", name="Release kill switch")).to_be_visible()

    admin_origin = stack.admin_url().rstrip("/")
    assert requested and all(u.startswith(admin_origin + "/") for u in requested), \
        [u for u in requested if not u.startswith(admin_origin + "/")]

    served = {backend for (status, backend) in shoppers.replies}
    assert {"legacy", "new"} <= served, shoppers.replies
    assert all(status == 200 for status, _ in shoppers.replies), shoppers.replies
    assert not shoppers.wrong_carts, shoppers.wrong_carts[:3]
