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

from .appkeys import HTTP, SESSIONS, VERIFIER
from .errors import not_logged_in
from .sessions import Snapshot
from .shop_session import ShopSession, user_id
from .tokens import InvalidToken, UnknownKey


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


async def token_identity(request: web.Request, service: str) -> Identity | None:
    """The token's identity for ``service`` (its ``aud``); ``None`` without a header; 401
    for a bad token, one minted for another service, or one that names no shop user."""
    token = request.headers.get(IDENTITY_HEADER)
    if token is None:
        return None
    verifier = request.app[VERIFIER]
    try:
        try:
            identity = verifier.verify(token, service)
        except UnknownKey:  # a rotated key the gateway has published since we looked
            keys = verifier.keys
            if keys.url is None or not await keys.refresh(request.app[HTTP]):
                raise
            identity = verifier.verify(token, service)
    except InvalidToken:
        raise not_logged_in() from None  # the reason stays out of logs and answers
    if identity.user_id is None or user_id(identity.user_id) is None:
        raise not_logged_in()  # the shop serves no guests
    return identity


async def require_login(request: web.Request, service: str) -> LoggedIn:
    """A valid token for ``service`` whose session exists and belongs to its user; else 401."""
    identity = await token_identity(request, service)
    if identity is None:
        raise not_logged_in()
    snapshot = await request.app[SESSIONS].read_owned(identity)
    if snapshot is None:
        raise not_logged_in()
    return LoggedIn(identity, snapshot)
