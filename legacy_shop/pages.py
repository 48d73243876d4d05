"""The HTML page at ``/`` and its form endpoints under ``/ui``.

Forms post and redirect back (303), so the page works without JavaScript.
Every state-changing form carries the session's CSRF token; the login form
cannot (there is no session yet) and relies on ``SameSite=Lax`` instead.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets

import structlog
from aiohttp import web

from legacy_shop.api import checkout_session
from legacy_shop.errors import ApiError
from legacy_shop.queries import get_product, list_orders, list_products, render_cart
from legacy_shop.sessions import Session
from legacy_shop.state import ENGINE, SETTINGS
from legacy_shop.validation import (
    parse_cart_item,
    read_form,
    request_hash,
    valid_idempotency_key,
)
from legacy_shop.views import FLASH, MemberView, page
from legacy_shop.web_sessions import current_session, fingerprint, log_out, require_user
from legacy_shop.web_util import Handler, redirect

log = structlog.get_logger(__name__)

_DIGITS = re.compile(r"[0-9]{1,9}")


async def index(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    products = [p.render() for p in await list_products(engine)]
    session = current_session(request)
    member = None
    if session is not None and session.uid is not None:
        member = MemberView(
            uname=session.uname,
            csrf=session.csrf,
            cart=await render_cart(engine, session.basket()),
            orders=await list_orders(engine, session.uid),
            checkout_key=secrets.token_urlsafe(16),
        )
    body = page(node=request.app[SETTINGS].node_id, products=products,
                flash=_flash(request), member=member)
    return web.Response(text=body, content_type="text/html")


def _flash(request: web.Request) -> str | None:
    placed = request.query.get("placed", "")
    if _DIGITS.fullmatch(placed):
        return f"Thank you! Order #{int(placed)} is placed."
    return FLASH.get(request.query.get("error", ""))


async def _form_session(request: web.Request) -> tuple[Session, dict[str, str]]:
    """The logged-in session and the form, or ``ApiError`` if either is not right."""
    form = await read_form(request)
    session = require_user(request)
    if not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
        raise ApiError("bad_request")
    return session, form


def _form_int(form: dict[str, str], name: str) -> int | None:
    value = form.get(name, "")
    return int(value) if _DIGITS.fullmatch(value) else None


async def add(request: web.Request) -> web.Response:
    _, form = await _form_session(request)
    product_id, qty = parse_cart_item(
        {"product_id": _form_int(form, "product_id"), "qty": _form_int(form, "qty")}
    )
    if await get_product(request.app[ENGINE], product_id) is None:
        raise ApiError("product_not_found")
    require_user(request).add_item(product_id, qty)
    return redirect("/")


async def remove(request: web.Request) -> web.Response:
    session, form = await _form_session(request)
    product_id = _form_int(form, "product_id")
    if product_id is None:
        raise ApiError("bad_request")
    session.remove_item(product_id)
    return redirect("/")


async def checkout(request: web.Request) -> web.Response:
    session, form = await _form_session(request)
    key = form.get("idempotency_key", "")
    if not valid_idempotency_key(key):
        raise ApiError("bad_request")
    placed = await checkout_session(request, session, key, request_hash(b""))
    return redirect(f"/?placed={placed.order['id']}")


async def logout(request: web.Request) -> web.Response:
    session, _ = await _form_session(request)
    response = redirect("/")
    log_out(request, response)
    log.info("logout", user_id=session.uid, session=fingerprint(session.sid))
    return response


def _form_endpoint(handler: Handler) -> Handler:
    """On a form endpoint a failure is a redirect with a message, not a JSON body."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            code = "expired" if exc.code == "not_logged_in" else exc.code
            return redirect(f"/?error={code}")

    return wrapped


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_post("/ui/cart/add", _form_endpoint(add))
    app.router.add_post("/ui/cart/remove", _form_endpoint(remove))
    app.router.add_post("/ui/checkout", _form_endpoint(checkout))
    app.router.add_post("/ui/logout", _form_endpoint(logout))
