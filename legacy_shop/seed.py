"""``init_db``: create the schema and the demo data, from any number of processes.

Two nodes (and ``init-db``) may start at the same moment against one database.
Each run takes a database-wide lock for the whole create-and-seed transaction
(an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so the second
run waits and then finds everything in place. Should a race slip through
anyway -- a concurrent ``CREATE TABLE`` on PostgreSQL raises on the catalogue's
unique index, a concurrent seed raises ``IntegrityError`` -- the run is retried
and ``checkfirst`` / "seed only if empty" make the retry a no-op.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from legacy_shop.db import make_engine, metadata, products, users, write_transaction
from legacy_shop.passwords import hash_password

log = structlog.get_logger(__name__)

DEMO_USERS = ("alice", "bob", "carol", "dave")
DEMO_PASSWORD = "wonderland"  # noqa: S105 (documented demo credential)

# (id, name, description, price in cents)
PRODUCTS: tuple[tuple[int, str, str, int], ...] = (
    (1, "Darjeeling First Flush", "Loose-leaf black tea from the spring harvest, 100 g.", 1250),
    (2, "Porcelain Teapot", "White porcelain teapot with a removable infuser, 1 litre.", 3400),
    (3, "Cast-Iron Kettle", "Enamelled cast-iron kettle for the stove top, 1.2 litres.", 5900),
    (4, "Earl Grey Loose Leaf", "Black tea scented with bergamot oil, 250 g tin.", 1450),
    (5, "Bamboo Tea Whisk", "Hand-carved chasen with 100 prongs for matcha.", 1800),
    (6, "Ceremonial Matcha", "Stone-ground green tea powder from Uji, 30 g.", 2400),
    (7, "Glass Infuser Mug", "Double-walled glass mug with a stainless steel filter.", 1599),
    (8, "Hourglass Steeping Timer", "Sand timer that runs for three minutes, give or take.", 899),
    (9, "Linen Tea Towel", "Stonewashed linen, printed with a March Hare pattern.", 750),
    (10, "Wildflower Honey", "Raw honey from meadow hives, 350 g jar.", 975),
    (11, "Ginger Biscuits", "Crisp ginger biscuits in a reusable tin, 200 g.", 650),
    (12, "Gift Card", "A gift card worth 25.00, delivered by e-mail.", 2500),
)

_PG_LOCK_KEY = 0x5348_4F50  # "SHOP": any constant both processes agree on
_ATTEMPTS = 5


async def init_db(url: str) -> None:
    """Create the tables if missing and seed them if empty. Idempotent and concurrency-safe."""
    engine = make_engine(url)
    try:
        await prepare_database(engine)
    finally:
        await engine.dispose()


async def prepare_database(engine: AsyncEngine) -> None:
    """``init_db`` on an engine the caller owns (the app's own, at start-up)."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            async with write_transaction(engine) as conn:
                await _lock(conn)
                await conn.run_sync(metadata.create_all, checkfirst=True)
                seeded = await _seed(conn)
        except (IntegrityError, ProgrammingError, OperationalError) as exc:
            if attempt == _ATTEMPTS:
                raise
            log.warning("db_init_retry", attempt=attempt, error=type(exc.orig).__name__)
            await asyncio.sleep(0.05 * 2**attempt)  # let the concurrent run finish
            continue
        log.info("db_initialized", seeded=seeded, backend=engine.dialect.name)
        return


async def _lock(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    # On SQLite, write_transaction already took the write lock at BEGIN
    # (IMMEDIATE), which makes the existence checks and the DDL one unit.


async def _seed(conn: AsyncConnection) -> bool:
    seeded = False
    if not await conn.scalar(select(func.count()).select_from(users)):
        hashes = await asyncio.gather(
            *(asyncio.to_thread(hash_password, DEMO_PASSWORD) for _ in DEMO_USERS)
        )
        now = datetime.now(UTC).replace(tzinfo=None)
        await conn.execute(
            insert(users),
            [
                {"username": name, "password_hash": h, "created_at": now}
                for name, h in zip(DEMO_USERS, hashes, strict=True)
            ],
        )
        seeded = True
    if not await conn.scalar(select(func.count()).select_from(products)):
        await conn.execute(
            insert(products),
            [
                {"id": pid, "name": name, "description": desc, "price_cents": price}
                for pid, name, desc, price in PRODUCTS
            ],
        )
        seeded = True
    return seeded
