"""Django's ``planner_destination`` table, read-only: the columns this service reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

METADATA = MetaData()
"""Tests create the table from it; the service never does (Django owns the schema)."""

destinations = Table(
    "planner_destination", METADATA,
    Column("slug", String(40), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("country", String(100), nullable=False),
    Column("price_cents", Integer, nullable=False),
)


ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
                 "postgres": "postgresql+asyncpg"}


def make_engine(url: str) -> AsyncEngine:
    """An engine for ``url`` (a plain ``sqlite://`` or ``postgresql://`` URL, as Django's
    settings would name the database, gets the async driver); does not connect until
    first used."""
    parsed = make_url(url)
    driver = ASYNC_DRIVERS.get(parsed.drivername)
    if driver is not None:
        parsed = parsed.set(drivername=driver)
    return create_async_engine(parsed)


def as_json(row: Any) -> dict[str, str]:
    """A destination as the contract shows it (price a two-decimal string)."""
    return {"slug": row.slug, "name": row.name, "country": row.country,
            "price": f"{row.price_cents // 100}.{row.price_cents % 100:02d}"}


async def all_destinations(engine: AsyncEngine) -> list[dict[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(destinations).order_by(destinations.c.slug))
        return [as_json(r) for r in rows]


async def one_destination(engine: AsyncEngine, slug: str) -> dict[str, str] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(destinations).where(
            destinations.c.slug == slug))).first()
    return as_json(row) if row is not None else None
