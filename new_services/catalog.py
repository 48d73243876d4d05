"""Catalog service: ``GET /api/products`` and ``GET /api/products/{id}``.

Also the one place that reads ``products``: cart and checkout price lines here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters import contracts

from .appkeys import ENGINE
from .db import products
from .errors import ApiError
from .validation import fits_db_id, path_id


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    name: str
    description: str
    price_cents: int

    def to_json(self) -> dict[str, Any]:
        return contracts.product(self.id, self.name, self.description, self.price_cents)


async def fetch_products(
    conn: AsyncConnection, ids: Iterable[int] | None = None
) -> dict[int, Product]:
    """Products by id, in id order; all of them when ``ids`` is None."""
    query = select(products.c.id, products.c.name, products.c.description,
                   products.c.price_cents).order_by(products.c.id)
    if ids is not None:
        wanted = sorted({i for i in ids if fits_db_id(i)})
        if not wanted:
            return {}
        query = query.where(products.c.id.in_(wanted))
    rows = (await conn.execute(query)).all()
    return {r.id: Product(r.id, r.name, r.description or "", r.price_cents) for r in rows}


def priced_lines(cart: Mapping[int, int], known: Mapping[int, Product]) -> list[contracts.Line]:
    """Cart lines at today's prices; a product deleted since it was added cannot be priced."""
    return [
        contracts.Line(pid, known[pid].name, qty, known[pid].price_cents)
        for pid, qty in cart.items()
        if pid in known
    ]


async def list_products(request: web.Request) -> web.Response:
    async with request.app[ENGINE].connect() as conn:
        found = await fetch_products(conn)
    return web.json_response({"products": [p.to_json() for p in found.values()]})


async def get_product(request: web.Request) -> web.Response:
    product_id = path_id(request.match_info["id"])
    async with request.app[ENGINE].connect() as conn:
        found = await fetch_products(conn, [product_id])
    if product_id not in found:
        raise ApiError("not_found")
    return web.json_response({"product": found[product_id].to_json()})


def register(app: web.Application) -> None:
    app.router.add_get("/api/products", list_products)
    app.router.add_get("/api/products/{id}", get_product)
