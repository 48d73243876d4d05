"""Helpers for the new_services tests (no tests here; the name keeps to our paths).

The tests act as the gateway would: they log in through the service, take the
session id from the cookie and mint an EdDSA token for it with the private key
of the ``keypair`` fixture, exactly as ``adapters.claims.session_claims`` says.
The schema comes from our own table mappings (the monolith owns the real one).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp.test_utils import TestClient
from sqlalchemy import insert

from adapters.claims import Identity, session_claims
from adapters.handles import session_handle
from adapters.wire import IDENTITY_HEADER, SESSION_COOKIE
from new_services.db import METADATA, make_engine, products, users
from new_services.passwords import make_hasher
from new_services.settings import Settings
from tests.support.keys import SESSION_KEY, KeyPair

PASSWORD = "wonderland"
USERNAMES = ("alice", "bob", "carol", "dave")
PRODUCTS = [(i, f"Product {i}", f"Description of product {i}", 100 * i + 25) for i in range(1, 13)]
ISSUER = "strangler-gateway"
AUDIENCE = ["auth", "cart", "checkout", "orders", "catalog"]
"""Tests mint one token for every shop service (the gateway mints one per service)."""


@functools.cache
def password_hash() -> str:
    """One argon2id hash of PASSWORD, made once per run (it is deliberately slow)."""
    return make_hasher().hash(PASSWORD)


async def create_shop_db(url: str) -> None:
    """Schema from our mappings, four users and twelve products."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(METADATA.create_all)
            now = datetime.now(UTC).replace(tzinfo=None)
            await conn.execute(insert(users), [
                {"id": i, "username": name, "password_hash": password_hash(), "created_at": now}
                for i, name in enumerate(USERNAMES, start=1)])
            await conn.execute(insert(products), [
                {"id": i, "name": n, "description": d, "price_cents": p}
                for i, n, d, p in PRODUCTS])
    finally:
        await engine.dispose()


def make_settings(database_url: str, redis_url: str, key_prefix: str, keypair: KeyPair,
                  **overrides: Any) -> Settings:
    settings = Settings(instance_id="n1", database_url=database_url, redis_url=redis_url,
                        jwks_path=keypair.jwks, key_prefix=key_prefix, session_ttl_s=600,
                        jwt_issuer=ISSUER, session_key=SESSION_KEY)
    return replace(settings, **overrides)


def mint(keypair: KeyPair, sid: str, user_id: int | str, username: str | None,
         ttl_s: int = 300) -> str:
    """A token exactly as the gateway mints it (``sub`` is the user id as text)."""
    claims = session_claims(Identity(sid, str(user_id), username), issuer=ISSUER,
                            audience=AUDIENCE, now=int(time.time()), ttl_s=ttl_s)
    return jwt.encode(claims, keypair.private_key, algorithm="EdDSA",
                      headers={"kid": keypair.kid})


@dataclass
class Shopper:
    """A logged-in user talking to one instance through a gateway that mints its token."""

    client: TestClient[Any, Any]
    sid: str
    """The session's handle: what its token and Redis name it by (never the cookie)."""
    user_id: int
    username: str
    token: str

    def via(self, client: TestClient[Any, Any]) -> Shopper:
        """The same session, served by another instance."""
        return replace(self, client=client)

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {IDENTITY_HEADER: self.token, **kwargs.pop("headers", {})}
        async with self.client.request(method, path, headers=headers, **kwargs) as resp:
            return resp.status, await resp.json()

    async def must_call(self, method: str, path: str, status: int = 200,
                        **kwargs: Any) -> Any:
        """``call`` for a set-up step: any other status fails the test here, with the body."""
        got, body = await self.call(method, path, **kwargs)
        assert got == status, f"{method} {path} failed: {got} {body}"
        return body


async def log_in(client: TestClient[Any, Any], keypair: KeyPair,
                 username: str = "alice") -> Shopper:
    async with client.post("/login", json={"username": username, "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        user = (await resp.json())["user"]
        sid = session_handle(SESSION_KEY, resp.cookies[SESSION_COOKIE].value)
    token = mint(keypair, sid, user["id"], user["username"])
    return Shopper(client, sid, user["id"], user["username"], token)
