"""Helpers for tests that drive a monolith node through aiohttp's ``TestClient``.

Kept in the package (like ``aiohttp.test_utils``) so that every test of the
monolith -- ours and the gateway's -- logs in and reads sessions the same way.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from legacy_shop.seed import DEMO_PASSWORD
from legacy_shop.web_sessions import COOKIE


class UnexpectedResponse(AssertionError):
    """The node answered something a helper did not expect."""


async def log_in(client: TestClient[Any, Any], username: str = "alice",
                 password: str = DEMO_PASSWORD) -> str:
    """Log ``username`` in through ``POST /login``; returns the new session id."""
    resp = await client.post("/login", json={"username": username, "password": password})
    if resp.status != 200:
        raise UnexpectedResponse(f"login as {username}: {resp.status} {await resp.text()}")
    return resp.cookies[COOKIE].value


def cookie(sid: str) -> dict[str, str]:
    """Headers that present ``sid`` explicitly (for requests outside a client's cookie jar)."""
    return {"Cookie": f"{COOKIE}={sid}"}
