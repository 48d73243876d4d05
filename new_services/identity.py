"""Who is asking: the gateway's token, then the session record it names.

The only source of identity is the JWT in ``adapters.wire.IDENTITY_HEADER``
(cookies are the gateway's business). No header means anonymous; a header that
does not verify is a 401, never anonymous, and so is one whose ``sub`` is not a
user id of the shop. A verified token only counts while its session record
exists and still belongs to the token's user, so a token outliving a logout, or
naming someone else's session, gets nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from adapters.claims import Identity
from adapters.wire import IDENTITY_HEADER

from .appkeys import SESSIONS, VERIFIER
from .errors import not_logged_in
from .sessions import Snapshot
from .shop_session import ShopSession, user_id
from .tokens import InvalidToken


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """A verified identity and its session as read for this request."""

    identity: Identity
    snapshot: Snapshot

    @property
    def session(self) -> ShopSession:
        return self.snapshot.session

    @property
    def user_id(self) -> int:
        """The shop's user id: the session's, which is the token's."""
        user = self.snapshot.session.user
        assert user is not None  # require_login only returns sessions with their user
        return user.id


def token_identity(request: web.Request) -> Identity | None:
    """The token's identity; ``None`` without a header; 401 for a bad token or one that
    names no user of the shop."""
    token = request.headers.get(IDENTITY_HEADER)
    if token is None:
        return None
    try:
        identity = request.app[VERIFIER].verify(token)
    except InvalidToken:
        raise not_logged_in() from None  # the reason stays out of logs and answers
    if identity.user_id is None or user_id(identity.user_id) is None:
        raise not_logged_in()  # the shop serves no guests
    return identity


async def require_login(request: web.Request) -> LoggedIn:
    """A valid token whose session exists and belongs to its user; else 401."""
    identity = token_identity(request)
    if identity is None:
        raise not_logged_in()
    snapshot = await request.app[SESSIONS].read_owned(identity)
    if snapshot is None:
        raise not_logged_in()
    return LoggedIn(identity, snapshot)
