"""The session cookie and the per-request session state.

The cookie carries only the id; everything else stays on this node. A login
always issues a new id and destroys the old session, so an id planted before
login (session fixation) is worthless after it.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from legacy_shop.errors import ApiError
from legacy_shop.sessions import Session
from legacy_shop.state import REQUEST_SESSION, SESSIONS, RequestSession
from legacy_shop.web_util import Handler, is_https

COOKIE = "shop_session"


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record which session (if any) the request came with."""
    sid = request.cookies.get(COOKIE) or None
    request[REQUEST_SESSION] = RequestSession(cookie_sid=sid, sid=sid)
    return await handler(request)


def request_session(request: web.Request) -> RequestSession:
    state = request.get(REQUEST_SESSION)
    if state is None:  # a request that never passed the middleware (should not happen)
        state = request[REQUEST_SESSION] = RequestSession(None, None)
    return state


def current_session(request: web.Request) -> Session | None:
    return request.app[SESSIONS].get(request_session(request).sid)


def require_user(request: web.Request) -> Session:
    """The request's session if someone is logged in, else 401 ``not_logged_in``."""
    session = current_session(request)
    if session is None or session.uid is None:
        raise ApiError("not_logged_in")
    return session


def log_in(request: web.Request, response: web.StreamResponse, uid: int, uname: str) -> Session:
    """Replace the request's session with a fresh one for ``uid`` and set the cookie."""
    state = request_session(request)
    session = request.app[SESSIONS].login(state.sid, uid, uname)
    state.sid, state.created = session.sid, True
    response.set_cookie(COOKIE, session.sid, path="/", httponly=True, samesite="Lax",
                        secure=is_https(request) or None)
    return session


def log_out(request: web.Request, response: web.StreamResponse) -> bool:
    """Destroy the request's session (if any) and clear the cookie either way."""
    destroyed = request.app[SESSIONS].destroy(request_session(request).sid)
    response.del_cookie(COOKIE, path="/", httponly=True, samesite="Lax",
                        secure=is_https(request) or None)
    return destroyed


def fingerprint(sid: str | None) -> str | None:
    """A short, irreversible tag for logs: a session id is a credential, never logged."""
    return hashlib.sha256(sid.encode()).hexdigest()[:12] if sid else None
