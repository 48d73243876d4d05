"""When a store is down or a record is damaged: a clear 503 or 401, never a 500 or a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from adapters.store import session_key
from adapters.wire import IDENTITY_HEADER
from new_services.app import make_app
from tests.integration.test_new_support import create_shop_db, log_in, make_settings, mint
from tests.support.keys import KeyPair
from tests.support.net import free_port

Client = TestClient[Any, Any]


async def get(client: Client, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with client.get(path, **kwargs) as resp:
        return resp.status, await resp.json()


async def test_without_redis_the_instance_is_live_but_not_ready(
    aiohttp_client: Any, sqlite_url: str, key_prefix: str, keypair: KeyPair
) -> None:
    await create_shop_db(sqlite_url)
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    client = await aiohttp_client(make_app(
        make_settings(sqlite_url, dead_redis, key_prefix, keypair)))
    assert (await get(client, "/healthz"))[0] == 200
    status, body = await get(client, "/readyz")
    assert status == 503 and body["redis"] is False and body["db"] is True
    assert (await get(client, "/api/products"))[0] == 200  # the catalog needs no Redis
    token = mint(keypair, "s" * 43, 1, "alice")
    status, body = await get(client, "/api/cart", headers={IDENTITY_HEADER: token})
    assert status == 503 and body["error"] == "unavailable"


async def test_without_the_database_the_instance_is_not_ready(
    aiohttp_client: Any, tmp_path: Path, redis_url: str, key_prefix: str, keypair: KeyPair,
) -> None:
    missing = f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'shop.db'}"
    client = await aiohttp_client(make_app(
        make_settings(missing, redis_url, key_prefix, keypair)))
    status, body = await get(client, "/readyz")
    assert status == 503 and body["db"] is False and body["redis"] is True
    status, body = await get(client, "/api/products")
    assert status == 503 and body["error"] == "unavailable"


ALICE = '{"id": 1, "name": "alice", "claims": {}}'


@pytest.mark.parametrize("doc", [
    "{not json",
    # the shape before issue 11
    '{"schema": 1, "user": {"id": 1, "username": "alice"}, "cart": {}, "settled": [],'
    ' "legacy": {}}',
    '{"schema": 2, "user": {"id": "1", "name": "alice"}, "fields": {}, "extra": {}}',
    '{"schema": 2, "user": ' + ALICE + ', "fields": {"cart": [[1, 2]]}, "extra": {}}',
    '{"schema": 2, "user": ' + ALICE + ', "fields": {"cart": {"1": 0}}, "extra": {}}',
    '{"schema": 2, "user": ' + ALICE + ', "fields": {"settled": ["41"]}, "extra": {}}',
    '{"schema": 2, "user": ' + ALICE + ', "fields": {}, "extra": []}',
])
async def test_a_damaged_session_record_is_not_logged_in(
    aiohttp_client: Any, sqlite_url: str, redis_url: str, key_prefix: str, keypair: KeyPair,
    redis_client: aioredis.Redis, doc: str,
) -> None:
    await create_shop_db(sqlite_url)
    client = await aiohttp_client(make_app(
        make_settings(sqlite_url, redis_url, key_prefix, keypair)))
    shopper = await log_in(client, keypair)
    key = session_key(key_prefix, shopper.sid)
    await redis_client.hset(key, "doc", doc)
    with capture_logs() as logs:
        assert (await shopper.call("GET", "/api/cart"))[0] == 401
        assert (await shopper.call("POST", "/api/cart/items",
                                   json={"product_id": 1, "qty": 1}))[0] == 401
        assert (await shopper.call("POST", "/api/checkout"))[0] == 401
    assert "session_unreadable" in [e["event"] for e in logs]
    assert await redis_client.hget(key, "doc") == doc.encode()  # left for the gateway
