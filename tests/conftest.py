"""Fixtures shared by every layer: real Redis, real SQL databases, keys, ports.

Redis: the server on 127.0.0.1:6379 (``STRANGLER_TEST_REDIS_URL`` overrides),
database 9, and a random key prefix per test so runs never see each other.
PostgreSQL: the server on 127.0.0.1:5432 (``STRANGLER_TEST_PG_DSN``); each test
that asks for it gets a fresh database, dropped afterwards.
``make test`` (scripts/test-prereqs.sh) starts both when they do not answer; nothing here skips.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.support.keys import KeyPair, make_keypair
from tests.support.unleash import unleash_server  # noqa: F401 (a session fixture)

REDIS_URL = os.environ.get("STRANGLER_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
PG_DSN = os.environ.get("STRANGLER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def key_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(key_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    async for key in client.scan_iter(match=f"{key_prefix}:*", count=500):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async for url in _pg():
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    else:
        async for url in _pg():
            yield url


async def _pg() -> AsyncIterator[str]:
    import asyncpg

    name = f"strangler_t_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(f"{PG_DSN}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://{PG_DSN.split('://', 1)[1]}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def internal_token() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def keypair(tmp_path: Path) -> KeyPair:
    return make_keypair(tmp_path / "keys")


@pytest.fixture
def tmp_json(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data.json"
    path.write_text(json.dumps({}))
    yield path
