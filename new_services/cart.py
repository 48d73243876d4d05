"""Cart service: ``GET /api/cart``, ``POST /api/cart/items``, ``DELETE /api/cart/items/{id}``.

The cart lives in the shared session record; every change is a function of
the current document (add ``qty`` to a line, drop a line), so a compare-and-set
conflict is resolved by re-reading and re-applying it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import contracts

from .appkeys import ENGINE
from .catalog import fetch_products, priced_lines
from .errors import ApiError
from .identity import require_login, update
from .shop_session import ShopSession
from .validation import cart_item, json_object, path_id

SERVICE = "cart"
"""This service's name: the ``aud`` its tokens must carry (config: routes[].service)."""



async def render_cart(engine: AsyncEngine, session: ShopSession) -> dict[str, Any]:
    """The cart as the shop API shows it, priced from ``products`` now."""
    if not session.cart:
        return contracts.cart([])
    async with engine.connect() as conn:
        known = await fetch_products(conn, session.cart)
    return contracts.cart(priced_lines(session.cart, known))


async def get_cart(request: web.Request) -> web.Response:
    login = await require_login(request, SERVICE)
    return web.json_response(await render_cart(request.app[ENGINE], login.session))


async def add_item(request: web.Request) -> web.Response:
    login = await require_login(request, SERVICE)
    item = cart_item(json_object(await request.read()))
    engine = request.app[ENGINE]
    async with engine.connect() as conn:
        if not await fetch_products(conn, [item.product_id]):
            raise ApiError("product_not_found")
    session = await update(request, login, lambda s: s.with_item(item.product_id, item.qty))
    return web.json_response(await render_cart(engine, session))


async def remove_item(request: web.Request) -> web.Response:
    login = await require_login(request, SERVICE)
    product_id = path_id(request.match_info["product_id"])
    session = await update(request, login, lambda s: s.without_item(product_id))
    return web.json_response(await render_cart(request.app[ENGINE], session))


def register(app: web.Application) -> None:
    app.router.add_get("/api/cart", get_cart)
    app.router.add_post("/api/cart/items", add_item)
    app.router.add_delete("/api/cart/items/{product_id}", remove_item)
