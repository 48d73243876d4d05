"""App state, the request's session, and the headers that report it.

``session_middleware`` reads the request's ``sessionid`` (the last one wins,
see ``cookies``), lets the handler work on ``RequestSession``, then writes what
happened onto the response: the cookie (set at login and when a guest's first
write creates a session, expired at logout) and, on every response to a
request that carried a ``sessionid`` or created a session (docs/protocol.md
section 4, under this app's own names):

- ``X-Notes-Session``: the session the request ended with (the new id after a login),
- ``X-Notes-Rev``: its revision, ``0`` when it does not exist,
- ``X-Notes-Node``: the node id.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass

from aiohttp import web

from . import data
from .bodies import json_response
from .cookies import COOKIE, session_id
from .errors import NotesError
from .settings import Settings
from .store import Session, SessionStore
from .users import User, Users

SESSION_HEADER = "X-Notes-Session"
REV_HEADER = "X-Notes-Rev"
NODE_HEADER = "X-Notes-Node"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class RequestSession:
    """Which session a request came with and which it ends with.

    ``sid`` starts as the cookie's and becomes the new id when the request
    creates a session; ``created`` says it did (the cookie is then set);
    ``ended`` says it logged out (the cookie is then expired).
    """

    cookie_sid: str | None
    sid: str | None
    created: bool = False
    ended: bool = False


SETTINGS = web.AppKey("notes_settings", Settings)
SESSIONS = web.AppKey("notes_sessions", SessionStore)
USERS = web.AppKey("notes_users", Users)
REQUEST_SESSION = web.RequestKey("notes_request_session", RequestSession)


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    sid = session_id(request.headers.getall("Cookie", []))
    state = request[REQUEST_SESSION] = RequestSession(cookie_sid=sid, sid=sid)
    try:
        response = await handler(request)
    except NotesError as exc:
        response = json_response(exc.body(), status=exc.status)
    except web.HTTPException as exc:  # 404/405 from the router are answers too
        _stamp(request, state, exc.headers)
        raise
    _cookie(state, response)
    _stamp(request, state, response.headers)
    return response


def _cookie(state: RequestSession, response: web.StreamResponse) -> None:
    if state.created and state.sid:
        response.set_cookie(COOKIE, state.sid, path="/", httponly=True, samesite="Lax")
    elif state.ended:
        response.del_cookie(COOKIE, path="/", httponly=True, samesite="Lax")


def _stamp(request: web.Request, state: RequestSession,
           headers: MutableMapping[str, str]) -> None:
    if state.cookie_sid is None and not state.created:
        return
    headers[SESSION_HEADER] = state.sid or ""
    headers[REV_HEADER] = str(request.app[SESSIONS].revision(state.sid))
    headers[NODE_HEADER] = request.app[SETTINGS].node_id


def current(request: web.Request) -> Session | None:
    """The request's session, if it has one this node knows."""
    return request.app[SESSIONS].get(request[REQUEST_SESSION].sid)


def working_copy(request: web.Request) -> data.Data:
    """A copy of the session's data to change, or a fresh guest session's."""
    session = current(request)
    return copy.deepcopy(session.data) if session else data.fresh(time.time())


def commit(request: web.Request, new: data.Data) -> Session:
    """Store ``new`` as the request's session: a changed revision, or a guest's new session.

    Call it with no ``await`` since ``working_copy``: one event loop owns the
    store, so nothing can have changed the session in between.
    """
    state, store = request[REQUEST_SESSION], request.app[SESSIONS]
    session = store.get(state.sid)
    if session is not None:
        store.change(session, new)
        return session
    session = store.create(new)  # an unknown id from a client is never adopted
    state.sid, state.created = session.sid, True
    return session


def log_in(request: web.Request, user: User) -> Session:
    """Replace the request's session with a fresh id for ``user`` (see ``data.logged_in``)."""
    state, store = request[REQUEST_SESSION], request.app[SESSIONS]
    old = store.get(state.sid)
    session = store.login(state.sid, data.logged_in(old.data if old else None, user, time.time()))
    state.sid, state.created = session.sid, True
    return session


def log_out(request: web.Request) -> None:
    """Destroy the request's session (if any); the cookie is expired either way."""
    request.app[SESSIONS].destroy(request[REQUEST_SESSION].sid)
    request[REQUEST_SESSION].ended = True
