"""Our Core mappings of the monolith's tables, and the async engine.

The monolith owns the schema (``python -m legacy_shop init-db``, see
docs/protocol.md section 3); these ``Table`` objects only describe the columns we
use. Production code never creates tables; tests call ``METADATA.create_all``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

METADATA = MetaData()

users = Table(
    "users",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", DateTime),
)

products = Table(
    "products",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text),
    Column("price_cents", Integer, nullable=False),
)

orders = Table(
    "orders",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("total_cents", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("placed_by", String(16), nullable=False),
)

order_items = Table(
    "order_items",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False),
    Column("product_id", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("unit_price_cents", Integer, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    METADATA,
    Column("user_id", Integer, primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

MAX_DB_ID = 2**31 - 1
"""Ids are INTEGER columns: a larger number is no row, and must never reach asyncpg."""

_SQLITE_BEGIN = "sqlite_begin"


def async_url(url: str) -> str:
    """Accept plain ``sqlite://`` / ``postgresql://`` URLs and pick the async driver."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
              "postgres": "postgresql+asyncpg"}.get(parsed.drivername)
    if driver is None:
        return url
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def make_engine(url: str) -> AsyncEngine:
    """An engine for ``url``; does not connect until first used."""
    url = async_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        # A pooled connection may have died with a database restart; check before use.
        return create_async_engine(url, pool_pre_ping=True)
    engine = create_async_engine(url)
    _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: AsyncEngine) -> None:
    # Several processes (monolith nodes, service instances) share the file: WAL
    # lets readers run beside a writer, busy_timeout makes writers queue instead
    # of failing. We also take over BEGIN from the driver so that a write
    # transaction can take the write lock up front (BEGIN IMMEDIATE): a deferred
    # transaction that reads and then writes fails with SQLITE_BUSY at once,
    # without waiting, when another connection wrote in between.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("busy_timeout=10000", "journal_mode=WAL", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction that will write: takes SQLite's write lock at BEGIN."""
    async with engine.connect() as conn:
        await conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
        async with conn.begin():
            yield conn
