"""A shop user over real HTTP: its own cookie jar, one method per API call.

The ``must_*`` methods are for set-up steps (see ``checks``): a login, a cart
line or a flip that fails fails the test right there, with the reply.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from .browser import Browser, Reply
from .checks import expect


class ShopUser(Browser):
    """One browser-like client: keeps ``shop_session`` and the affinity cookie."""

    session_cookie = "shop_session"

    async def login(self, username: str = "alice", password: str = "wonderland") -> Reply:
        return await self.call("POST", "/login", {"username": username, "password": password})

    async def must_login(self, username: str = "alice",
                         password: str = "wonderland") -> Reply:
        return expect(await self.login(username, password), 200, f"login as {username}")

    async def logout(self) -> Reply:
        return await self.call("POST", "/logout")

    async def me(self) -> Reply:
        return await self.call("GET", "/api/me")

    async def products(self) -> Reply:
        return await self.call("GET", "/api/products")

    async def cart(self) -> Reply:
        return await self.call("GET", "/api/cart")

    async def add(self, product_id: int, qty: int = 1) -> Reply:
        return await self.call("POST", "/api/cart/items", {"product_id": product_id, "qty": qty})

    async def must_add(self, product_id: int, qty: int = 1) -> Reply:
        return expect(await self.add(product_id, qty), 200,
                      f"adding {qty} of product {product_id} to the cart")

    async def remove(self, product_id: int) -> Reply:
        return await self.call("DELETE", f"/api/cart/items/{product_id}")

    async def checkout(self, key: str | None = None) -> Reply:
        headers = {"Idempotency-Key": key} if key else None
        return await self.call("POST", "/api/checkout", headers=headers)

    async def orders(self) -> Reply:
        return await self.call("GET", "/api/orders")


def cart_lines(reply: Reply) -> dict[int, int]:
    """product id -> qty of a cart reply."""
    return {item["product_id"]: item["qty"] for item in reply.body["items"]}


class Admin:
    """The admin API with the bearer token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}

    async def _call(self, method: str, path: str, json: Any = None,
                    auth: bool = True) -> Reply:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http, \
                http.request(method, self.base + path, json=json,
                             headers=self.headers if auth else None) as resp:
            body = await resp.json(content_type=None) if resp.content_length != 0 else None
            return Reply(resp.status, body, resp.headers)

    async def set_route(self, name: str, stage: str, percent: int | None = None,
                        auth: bool = True) -> Reply:
        body: dict[str, Any] = {"stage": stage}
        if percent is not None:
            body["percent"] = percent
        return await self._call("PUT", f"/api/routes/{name}", body, auth)

    async def must_set_route(self, name: str, stage: str, percent: int | None = None) -> Reply:
        what = f"flip of {name} to {stage}" + (f" {percent}%" if percent is not None else "")
        return expect(await self.set_route(name, stage, percent), 200, what)

    async def kill(self, on: bool) -> Reply:
        return await self._call("PUT", "/api/kill-switch", {"on": on})

    async def must_kill(self, on: bool) -> Reply:
        return expect(await self.kill(on), 200, f"kill switch {'on' if on else 'off'}")

    async def routes(self) -> Reply:
        return await self._call("GET", "/api/routes", auth=False)

    async def ready(self) -> Reply:
        return await self._call("GET", "/readyz", auth=False)
