"""Schema, seed and engine set-up of the monolith's database."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from sqlalchemy import inspect, select, text

from legacy_shop.db import make_engine, metadata, normalize_url, products, users
from legacy_shop.seed import DEMO_PASSWORD, PRODUCTS, init_db


async def test_init_db_twice_at_once_then_again(database_url: str) -> None:
    await asyncio.gather(init_db(database_url), init_db(database_url))
    await init_db(database_url)
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            assert set(metadata.tables) <= tables
            rows = (await conn.execute(select(users).order_by(users.c.id))).all()
            items = (await conn.execute(select(products).order_by(products.c.id))).all()
    finally:
        await engine.dispose()
    assert [(r.id, r.username) for r in rows] == [(1, "alice"), (2, "bob"), (3, "carol"),
                                                  (4, "dave")]
    for row in rows:
        assert row.password_hash.startswith("$argon2id$") and "m=19456,t=2,p=1" in row.password_hash
        assert PasswordHasher().verify(row.password_hash, DEMO_PASSWORD)
    assert [r.id for r in items] == list(range(1, 13)) == [p[0] for p in PRODUCTS]
    assert all(r.price_cents > 0 and r.name and r.description for r in items)


async def test_sqlite_connections_are_set_up_for_sharing(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            mode = await conn.scalar(text("PRAGMA journal_mode"))
            timeout = await conn.scalar(text("PRAGMA busy_timeout"))
            fks = await conn.scalar(text("PRAGMA foreign_keys"))
    finally:
        await engine.dispose()
    assert (mode, timeout, fks) == ("wal", 10000, 1)


def test_plain_urls_get_the_async_driver() -> None:
    assert normalize_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert normalize_url("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert normalize_url("postgresql+asyncpg://h/db") == "postgresql+asyncpg://h/db"
