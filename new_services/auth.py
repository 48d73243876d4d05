"""Auth service: ``POST /login``, ``POST /logout``, ``GET /api/me``.

Login checks the password against ``users`` (argon2id, same cost for unknown
users), creates a fresh shared session record and sets the same cookie the
monolith sets; the gateway then mints tokens for that session. Logout empties
the token's session record (if it is still theirs) and always answers 200.
"""

from __future__ import annotations

import structlog
from aiohttp import web
from sqlalchemy import select

from adapters import contracts
from adapters.session import SharedSession, User
from adapters.wire import SESSION_COOKIE

from .appkeys import ENGINE, PASSWORDS, SESSIONS
from .db import users
from .errors import ApiError
from .identity import require_login, token_identity
from .sessions import fingerprint
from .validation import credentials, json_object

log = structlog.get_logger("new_services.auth")

MAX_USERNAME = 64


def _over_tls(request: web.Request) -> bool:
    proto = request.headers.get("X-Forwarded-Proto", "")
    return proto.split(",")[0].strip().lower() == "https"


async def _find_user(request: web.Request, username: str) -> tuple[User, str] | None:
    if len(username) > MAX_USERNAME:  # cannot exist; still costs a dummy verify below
        return None
    query = select(users.c.id, users.c.username, users.c.password_hash).where(
        users.c.username == username)
    async with request.app[ENGINE].connect() as conn:
        row = (await conn.execute(query)).first()
    return None if row is None else (User(row.id, row.username), row.password_hash)


async def login(request: web.Request) -> web.Response:
    creds = credentials(json_object(await request.read()))
    found = await _find_user(request, creds.username)
    ok = await request.app[PASSWORDS].verify(found[1] if found else None, creds.password)
    if not ok or found is None:
        log.info("login_failed")
        raise ApiError("invalid_credentials")
    user = found[0]
    sid = await request.app[SESSIONS].create(SharedSession(user=user))
    log.info("login", user_id=user.id, session=fingerprint(sid))
    response = web.json_response(contracts.user(user.id, user.username))
    response.set_cookie(SESSION_COOKIE, sid, httponly=True, path="/", samesite="Lax",
                        secure=True if _over_tls(request) else None)
    return response


async def logout(request: web.Request) -> web.Response:
    try:
        identity = token_identity(request)
    except ApiError:  # a bad token logs nobody out, and logout still answers 200
        identity = None
    ended = identity is not None and await request.app[SESSIONS].log_out(identity)
    log.info("logout", user_id=identity.user_id if identity else None, ended=ended)
    response = web.json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax",
                        secure=True if _over_tls(request) else None)
    return response


async def me(request: web.Request) -> web.Response:
    who = await require_login(request)
    user = who.session.user
    assert user is not None  # require_login only returns sessions with their user
    return web.json_response(contracts.user(user.id, user.username))


def register(app: web.Application) -> None:
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/me", me)
