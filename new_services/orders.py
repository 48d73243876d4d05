"""Orders service: ``GET /api/orders``, and reading orders back for checkout replays."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters import contracts

from .appkeys import ENGINE
from .db import order_items, orders
from .identity import require_login

SERVICE = "orders"
"""This service's name: the ``aud`` its tokens must carry (config: routes[].service)."""



async def _render(conn: AsyncConnection,
                  heads: Sequence[tuple[int, datetime]]) -> list[dict[str, Any]]:
    """Orders given as (id, created_at), in that order, each with its lines."""
    ids = [order_id for order_id, _ in heads]
    lines: dict[int, list[contracts.Line]] = defaultdict(list)
    if ids:
        query = select(order_items.c.order_id, order_items.c.product_id, order_items.c.name,
                       order_items.c.qty, order_items.c.unit_price_cents
                       ).where(order_items.c.order_id.in_(ids))
        for item in (await conn.execute(query)).all():
            lines[item.order_id].append(
                contracts.Line(item.product_id, item.name, item.qty, item.unit_price_cents))
    return [contracts.order(order_id, created_at, lines[order_id])
            for order_id, created_at in heads]


async def user_orders(conn: AsyncConnection, user_id: int) -> list[dict[str, Any]]:
    """A user's orders, newest first, as the shop API shows them."""
    query = (select(orders.c.id, orders.c.created_at).where(orders.c.user_id == user_id)
             .order_by(orders.c.created_at.desc(), orders.c.id.desc()))
    return await _render(conn, [(r.id, r.created_at) for r in await conn.execute(query)])


async def one_order(conn: AsyncConnection, order_id: int) -> dict[str, Any]:
    query = select(orders.c.id, orders.c.created_at).where(orders.c.id == order_id)
    row = (await conn.execute(query)).one()
    return (await _render(conn, [(row.id, row.created_at)]))[0]


async def list_orders(request: web.Request) -> web.Response:
    login = await require_login(request, SERVICE)
    async with request.app[ENGINE].connect() as conn:
        found = await user_orders(conn, login.user_id)
    return web.json_response({"orders": found})


def register(app: web.Application) -> None:
    app.router.add_get("/api/orders", list_orders)
