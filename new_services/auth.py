"""Auth service: ``POST /login``, ``POST /logout``, ``GET /api/me``.

Login checks the password against ``users`` (argon2id, same cost for unknown
users), creates a fresh shared session record and sets the same cookie the
monolith sets; the gateway then mints tokens for that session. As on the
monolith, a login retires the session the request came with (an id planted
before login is worthless after it), and a form post from the monolith's HTML
page gets the monolith's 303 redirects instead of JSON. Logout empties the
token's session record (if it is still theirs) and always answers 200.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import select

from adapters import contracts
from adapters.wire import SESSION_COOKIE
from strangler_sdk.aiohttp import SDK
from strangler_sdk.sessions import fingerprint

from .appkeys import ENGINE, PASSWORDS
from .db import users
from .errors import ApiError
from .identity import log_out, require_login, token_identity
from .shop_session import ShopSession, ShopUser
from .validation import Credentials, credentials, json_object

log = structlog.get_logger("new_services.auth")
SERVICE = "auth"
"""This service's name: the ``aud`` its tokens must carry (config: routes[].service)."""


MAX_USERNAME = 64
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _over_tls(request: web.Request) -> bool:
    # The gateway terminates TLS and says so; we speak plain HTTP behind it.
    proto = request.headers.get("X-Forwarded-Proto", "")
    return proto.split(",")[0].strip().lower() == "https" or request.secure


def _redirect(location: str) -> web.Response:
    """303 See Other, the monolith's answer to its HTML login form."""
    return web.Response(status=303, headers={"Location": location})


async def _read_credentials(request: web.Request, from_form: bool) -> Credentials:
    if from_form:
        form = await request.post()
        body: dict[str, Any] = {k: form.get(k) for k in ("username", "password")}
        return credentials(body)
    return credentials(json_object(await request.read()))


async def _check_password(request: web.Request, creds: Credentials) -> ShopUser | None:
    """The user if the password is right; the same work (and time) when the user is unknown."""
    row = None
    if len(creds.username) <= MAX_USERNAME:  # a longer name cannot exist in the column
        query = select(users.c.id, users.c.username, users.c.password_hash).where(
            users.c.username == creds.username)
        async with request.app[ENGINE].connect() as conn:
            row = (await conn.execute(query)).first()
    ok = await request.app[PASSWORDS].verify(row.password_hash if row else None, creds.password)
    return ShopUser(row.id, row.username) if ok and row is not None else None


async def _retire_previous_session(request: web.Request) -> None:
    try:
        previous = await token_identity(request, SERVICE)
    except ApiError:  # a bad token names no session we may touch
        return
    if previous is not None and await log_out(request, previous):
        log.info("session_retired_at_login", user_id=previous.user_id,
                 session=fingerprint(previous.session_id))


async def login(request: web.Request) -> web.Response:
    from_form = request.content_type in FORM_TYPES
    try:
        user = await _check_password(request, await _read_credentials(request, from_form))
    except ApiError as exc:
        if from_form:
            return _redirect(f"/?error={exc.code}")
        raise
    if user is None:
        log.info("login_failed", reason="invalid_credentials")
        if from_form:
            return _redirect("/?error=invalid_credentials")
        raise ApiError("invalid_credentials")
    await _retire_previous_session(request)
    sid = await request.app[SDK].sessions.create(ShopSession(user).to_document())
    log.info("login", user_id=user.id, session=fingerprint(sid))
    response = _redirect("/") if from_form else web.json_response(
        contracts.user(user.id, user.username))
    response.set_cookie(SESSION_COOKIE, sid, httponly=True, path="/", samesite="Lax",
                        secure=_over_tls(request) or None)
    return response


async def logout(request: web.Request) -> web.Response:
    try:
        identity = await token_identity(request, SERVICE)
    except ApiError:  # a bad token logs nobody out, and logout still answers 200
        identity = None
    if identity is not None and await log_out(request, identity):
        log.info("logout", user_id=identity.user_id, session=fingerprint(identity.session_id))
    response = web.json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax",
                        secure=_over_tls(request) or None)
    return response


async def me(request: web.Request) -> web.Response:
    who = await require_login(request, SERVICE)
    user = who.session.user
    assert user is not None  # require_login only returns sessions with their user
    return web.json_response(contracts.user(user.id, user.username))


def register(app: web.Application) -> None:
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/me", me)
