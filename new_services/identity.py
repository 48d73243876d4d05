"""Who is asking, as the shop sees it: the SDK's verified token, then the session it names.

The SDK (``strangler_sdk.aiohttp.Caller``) verifies the token for the route's
service and applies the protocol's "no session" rules; this module adds the
shop's own: a ``sub`` that is no shop user id is a 401, and the session must
read as a shop session (``ShopSession``) or it is none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from adapters.claims import Identity
from adapters.document import EMPTY, Document, SessionFormatError
from strangler_sdk.aiohttp import SDK, caller
from strangler_sdk.errors import NotLoggedIn
from strangler_sdk.sessions import Snapshot, fingerprint

from .errors import not_logged_in
from .shop_session import ShopSession, user_id

log = structlog.get_logger("new_services.identity")


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """A verified identity and its session as read for this request."""

    identity: Identity
    snapshot: Snapshot
    session: ShopSession

    @property
    def user_id(self) -> int:
        """The shop's user id: the session's, which is the token's."""
        user = self.session.user
        assert user is not None  # require_login only returns sessions with their user
        return user.id


async def token_identity(request: web.Request, service: str) -> Identity | None:
    """The token's identity for ``service`` (its ``aud``); ``None`` without a header; 401
    for a bad token, one minted for another service, or one that names no shop user."""
    try:
        identity = await caller(request).identity_for(service, guests=False)
    except NotLoggedIn:
        raise not_logged_in() from None
    if identity is not None and (identity.user_id is None or user_id(identity.user_id) is None):
        raise not_logged_in()  # the shop serves no guests
    return identity


async def require_login(request: web.Request, service: str) -> LoggedIn:
    """A valid token for ``service`` whose session exists and belongs to its user; else 401."""
    identity = await token_identity(request, service)
    if identity is None:
        raise not_logged_in()
    snapshot = await request.app[SDK].sessions.read_owned(identity)
    if snapshot is None:
        raise not_logged_in()
    session = _shop(snapshot.doc)
    if session is None or session.user is None:
        log.error("session_unreadable", session=fingerprint(identity.session_id),
                  reason="shop")
        raise not_logged_in()
    return LoggedIn(identity, snapshot, session)


async def update(request: web.Request, login: LoggedIn,
                 change: Callable[[ShopSession], ShopSession], *,
                 op: str | None = None) -> ShopSession:
    """Apply a change of the shop's session to the record, exactly once (the SDK
    re-applies it on a conflict); 401 if the session is no longer theirs."""
    def on_document(doc: Document) -> Document:
        session = _shop(doc)
        if session is None:  # it stopped being a shop session: never overwrite it
            raise not_logged_in()
        return change(session).to_document()
    doc = await request.app[SDK].sessions.update(login.identity, on_document,
                                                 first=login.snapshot, op=op)
    session = _shop(doc)
    return session if session is not None else ShopSession()


async def log_out(request: web.Request, identity: Identity) -> bool:
    """Empty the token's session if it is still theirs (and a shop session); False
    otherwise."""
    def emptied(doc: Document) -> Document:
        if _shop(doc) is None:
            raise NotLoggedIn()
        return EMPTY
    try:
        await request.app[SDK].sessions.update(identity, emptied)
    except NotLoggedIn:
        return False
    return True


def _shop(doc: Document) -> ShopSession | None:
    try:
        return ShopSession.from_document(doc)
    except SessionFormatError:
        return None
