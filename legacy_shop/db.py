"""The shop's tables and engine creation.

The monolith owns this schema (docs/protocol.md section 3); new services map
the same tables and never create them. Timestamps are naive UTC
(``TIMESTAMP WITHOUT TIME ZONE``), as the schema says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

products = Table(
    "products",
    metadata,
    # Ids are fixed by the seed (1..12) and referenced by carts everywhere.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("price_cents", Integer, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("total_cents", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("placed_by", String(16), nullable=False),
    Index("ix_orders_user_created", "user_id", "created_at"),
)

order_items = Table(
    "order_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False, index=True),
    # Not a foreign key: an order keeps its lines even if the catalogue changes.
    Column("product_id", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("unit_price_cents", Integer, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", Integer, nullable=False),
    Column("key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False),
    Column("created_at", DateTime, nullable=False),
    PrimaryKeyConstraint("user_id", "key", name="pk_idempotency_keys"),
)

INT32_MAX = 2**31 - 1
"""Largest value an ``INTEGER`` column holds on PostgreSQL; bigger ids name nothing."""


def normalize_url(url: str) -> str:
    """Pick the async driver for plain ``sqlite://`` and ``postgresql://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str) -> AsyncEngine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and FK checks.

    Creating the engine connects to nothing; the first query does.
    """
    url = normalize_url(url)
    if not is_sqlite(url):
        return create_async_engine(url, pool_pre_ping=True)
    _ensure_sqlite_dir(url)
    engine = create_async_engine(url)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


_SQLITE_BEGIN = "sqlite_begin"


def _sqlite_begin(conn: Any) -> None:
    # The driver's own BEGIN is turned off (isolation_level=None) so a write
    # transaction can take the write lock up front: a deferred transaction that
    # reads and then writes fails at once with "database is locked", without
    # waiting for busy_timeout, when another process wrote in between.
    conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get(_SQLITE_BEGIN, 'DEFERRED')}")


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that will write; on SQLite it holds the write lock from BEGIN."""
    async with engine.connect() as conn:
        await conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
        async with conn.begin():
            yield conn


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Several processes (two legacy nodes, two new-service instances) share the
    # file. busy_timeout goes first so that switching to WAL, which needs a
    # brief exclusive lock on a fresh file, waits instead of failing.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _ensure_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
