"""The JSON shop API (docs/protocol.md section 1), plus ``/healthz``.

Handlers check who is asking first (401), then the input (400/404), then do
the work. Any ``await`` may let another request of the same session run, so
a handler looks the session up again after awaiting before it changes it.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from legacy_shop import render
from legacy_shop.checkout import Placed, order_lines, place_order
from legacy_shop.errors import ApiError
from legacy_shop.passwords import verify_password
from legacy_shop.queries import find_user, get_product, list_orders, list_products, render_cart
from legacy_shop.sessions import Session
from legacy_shop.state import BOOT_ID, ENGINE, SESSIONS, SETTINGS
from legacy_shop.validation import (
    parse_cart_item,
    parse_credentials,
    parse_object,
    parse_path_id,
    read_form,
    request_hash,
    valid_idempotency_key,
)
from legacy_shop.web_sessions import (
    current_session,
    fingerprint,
    log_in,
    log_out,
    request_session,
    require_user,
)
from legacy_shop.web_util import json_response, redirect

log = structlog.get_logger(__name__)

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
REPLAYED_HEADER = "Idempotent-Replayed"


async def healthz(request: web.Request) -> web.Response:
    app = request.app
    return json_response({"status": "ok", "node": app[SETTINGS].node_id, "boot_id": app[BOOT_ID]})


async def login(request: web.Request) -> web.Response:
    """JSON login; a form post (the HTML page) gets a 303 back to ``/`` instead."""
    from_form = request.content_type in _FORM_TYPES
    try:
        username, password = await _credentials(request, from_form)
    except ApiError:
        if from_form:
            return redirect("/?error=bad_request")
        raise
    user = await find_user(request.app[ENGINE], username)
    if not await verify_password(user.password_hash if user else None, password) or not user:
        log.info("login_failed", reason="invalid_credentials")
        if from_form:
            return redirect("/?error=invalid_credentials")
        raise ApiError("invalid_credentials")
    response = redirect("/") if from_form else json_response(render.user(user.id, user.username))
    session = log_in(request, response, user.id, user.username)
    log.info("login", user_id=user.id, session=fingerprint(session.sid))
    return response


async def _credentials(request: web.Request, from_form: bool) -> tuple[str, str]:
    if from_form:
        form = await read_form(request)
        return parse_credentials({k: form.get(k) for k in ("username", "password")})
    return parse_credentials(parse_object(await request.read()))


async def logout(request: web.Request) -> web.Response:
    response = json_response({"ok": True})
    session = current_session(request)
    if log_out(request, response) and session is not None:
        log.info("logout", user_id=session.uid, session=fingerprint(session.sid))
    return response


async def me(request: web.Request) -> web.Response:
    session = require_user(request)
    return json_response(render.user(session.uid or 0, session.uname))


async def products(request: web.Request) -> web.Response:
    rows = await list_products(request.app[ENGINE])
    return json_response({"products": [p.render() for p in rows]})


async def product(request: web.Request) -> web.Response:
    product_id = parse_path_id(request.match_info["product_id"])
    row = await get_product(request.app[ENGINE], product_id)
    if row is None:
        raise ApiError("not_found")
    session = current_session(request)
    if session is not None:
        # The monolith remembers the last product a visitor looked at (it used
        # to drive a "recently viewed" box); a real change, so it bumps the revision.
        session.set("last_viewed_product", row.id)
    return json_response({"product": row.render()})


async def cart(request: web.Request) -> web.Response:
    session = require_user(request)
    return json_response(await render_cart(request.app[ENGINE], session.basket()))


async def add_item(request: web.Request) -> web.Response:
    require_user(request)
    product_id, qty = parse_cart_item(parse_object(await request.read()))
    if await get_product(request.app[ENGINE], product_id) is None:
        raise ApiError("product_not_found")
    session = require_user(request)  # again: we awaited
    session.add_item(product_id, qty)
    return json_response(await render_cart(request.app[ENGINE], session.basket()))


async def remove_item(request: web.Request) -> web.Response:
    session = require_user(request)
    session.remove_item(parse_path_id(request.match_info["product_id"]))
    return json_response(await render_cart(request.app[ENGINE], session.basket()))


async def checkout(request: web.Request) -> web.Response:
    require_user(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not valid_idempotency_key(key):
        raise ApiError("invalid_idempotency_key")
    body_hash = request_hash(await request.read())
    session = require_user(request)  # again: we awaited
    placed = await checkout_session(request, session, key, body_hash)
    if placed.replayed:
        return json_response({"order": placed.order}, headers={REPLAYED_HEADER: "true"})
    return json_response({"order": placed.order}, status=201)


async def checkout_session(request: web.Request, session: Session, key: str | None,
                           body_hash: str) -> Placed:
    """Place (or replay) the order for ``session``'s basket and settle the basket after."""
    uid = session.uid or 0
    placed = await place_order(request.app[ENGINE], uid, session.basket(), key, body_hash)
    if placed.ordered or placed.settle_on_replay:
        # The session may have changed (or gone) while we awaited the database:
        # take out exactly what was ordered from whatever it holds now, once per
        # order -- a replay finishes what a first attempt whose answer was lost
        # did not (its node died, say), and changes nothing otherwise.
        live = request.app[SESSIONS].peek(request_session(request).sid)
        if live is not None and live.uid == uid:
            live.settle(int(placed.order["id"]), placed.ordered or order_lines(placed.order))
    return placed


async def orders(request: web.Request) -> web.Response:
    session = require_user(request)
    return json_response({"orders": await list_orders(request.app[ENGINE], session.uid or 0)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/products", products)
    app.router.add_get("/api/products/{product_id}", product)
    app.router.add_get("/api/cart", cart)
    app.router.add_post("/api/cart/items", add_item)
    app.router.add_delete("/api/cart/items/{product_id}", remove_item)
    app.router.add_post("/api/checkout", checkout)
    app.router.add_get("/api/orders", orders)
