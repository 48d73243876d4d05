"""SQL reads: the catalogue, users, and a user's orders."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from legacy_shop import render
from legacy_shop.db import order_items, orders, products, users
from legacy_shop.validation import storable_id


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    name: str
    description: str
    price_cents: int

    def render(self) -> dict[str, Any]:
        return render.product(self.id, self.name, self.description, self.price_cents)


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    username: str
    password_hash: str


def _product(row: Any) -> Product:
    return Product(row.id, row.name, row.description, row.price_cents)


async def list_products(engine: AsyncEngine) -> list[Product]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(products).order_by(products.c.id))
        return [_product(r) for r in rows]


async def get_product(engine: AsyncEngine, product_id: int) -> Product | None:
    if not storable_id(product_id):
        return None
    async with engine.connect() as conn:
        row = (await conn.execute(select(products).where(products.c.id == product_id))).first()
        return _product(row) if row else None


async def products_by_id(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, Product]:
    wanted = sorted({i for i in ids if storable_id(i)})
    if not wanted:
        return {}
    rows = await conn.execute(select(products).where(products.c.id.in_(wanted)))
    return {r.id: _product(r) for r in rows}


def cart_lines(basket: Mapping[int, int], catalogue: Mapping[int, Product]) -> list[render.Line]:
    """Basket -> priced lines. A product that left the catalogue is not shown or sold."""
    return [
        render.Line(pid, catalogue[pid].name, qty, catalogue[pid].price_cents)
        for pid, qty in sorted(basket.items())
        if pid in catalogue
    ]


async def render_cart(engine: AsyncEngine, basket: Mapping[int, int]) -> dict[str, Any]:
    if not basket:
        return render.cart([])
    async with engine.connect() as conn:
        catalogue = await products_by_id(conn, basket)
    return render.cart(cart_lines(basket, catalogue))


async def find_user(engine: AsyncEngine, username: str) -> UserRow | None:
    async with engine.connect() as conn:
        query = select(users.c.id, users.c.username, users.c.password_hash).where(
            users.c.username == username
        )
        row = (await conn.execute(query)).first()
        return UserRow(row.id, row.username, row.password_hash) if row else None


async def load_order(conn: AsyncConnection, order_id: int) -> dict[str, Any]:
    """One order as the API renders it (used for idempotent replays)."""
    row = (await conn.execute(select(orders.c.created_at).where(orders.c.id == order_id))).one()
    lines = await _order_lines(conn, [order_id])
    return render.order(order_id, row.created_at, lines.get(order_id, []))


async def list_orders(engine: AsyncEngine, user_id: int) -> list[dict[str, Any]]:
    """The user's orders, newest first (ties broken by id, also newest first)."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(orders.c.id, orders.c.created_at)
                .where(orders.c.user_id == user_id)
                .order_by(orders.c.created_at.desc(), orders.c.id.desc())
            )
        ).all()
        lines = await _order_lines(conn, [r.id for r in rows])
    return [render.order(r.id, r.created_at, lines.get(r.id, [])) for r in rows]


async def _order_lines(conn: AsyncConnection, order_ids: list[int]
                       ) -> dict[int, list[render.Line]]:
    if not order_ids:
        return {}
    query = select(order_items).where(order_items.c.order_id.in_(order_ids))
    lines: dict[int, list[render.Line]] = {}
    for r in await conn.execute(query):
        lines.setdefault(r.order_id, []).append(
            render.Line(r.product_id, r.name, r.qty, r.unit_price_cents)
        )
    return lines
