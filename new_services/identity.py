"""Who is asking: the gateway's token, then the session record it names.

The only source of identity is the JWT in ``adapters.wire.IDENTITY_HEADER``
(cookies are the gateway's business). No header means anonymous; a header that
does not verify is a 401, never anonymous. A verified token only counts while
its session record exists and still belongs to the token's user, so a token
outliving a logout, or naming someone else's session, gets nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from adapters.claims import Identity
from adapters.session import SharedSession
from adapters.wire import IDENTITY_HEADER

from .appkeys import SESSIONS, VERIFIER
from .errors import not_logged_in
from .sessions import Snapshot
from .tokens import InvalidToken


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """A verified identity and its session as read for this request."""

    identity: Identity
    snapshot: Snapshot

    @property
    def session(self) -> SharedSession:
        return self.snapshot.session


def token_identity(request: web.Request) -> Identity | None:
    """The token's identity; ``None`` without a header; 401 for a bad token."""
    token = request.headers.get(IDENTITY_HEADER)
    if token is None:
        return None
    try:
        return request.app[VERIFIER].verify(token)
    except InvalidToken:
        raise not_logged_in() from None  # the reason stays out of logs and answers


async def require_login(request: web.Request) -> LoggedIn:
    """A valid token whose session exists and belongs to its user; else 401."""
    identity = token_identity(request)
    if identity is None:
        raise not_logged_in()
    snapshot = await request.app[SESSIONS].read_owned(identity)
    if snapshot is None:
        raise not_logged_in()
    return LoggedIn(identity, snapshot)
