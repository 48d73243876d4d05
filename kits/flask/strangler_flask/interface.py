"""The Flask ``SessionInterface`` the kit puts in front of Flask-Session's.

Flask-Session does the sessions; this wrapper adds what the protocol needs at
the end of every request, under the node's lock (``store.NodeSessions``):

- the revision: +1 when the app changed the session (``session.modified``),
  1 for a new one; a save reads the stored revision anew, so an import that
  landed during the request still moves the revision on;
- an unchanged session is saved (Flask-Session refreshes it on every request by
  default) from what is stored *now*, never from the copy the request opened:
  a refresh must not undo an import that landed meanwhile, nor bring back a
  session deleted meanwhile; a session deleted meanwhile that the request
  changed is saved as a new session under a new id (an id once deleted is
  never used again);
- the three headers, on every response to a request that carried the session
  cookie or created a session: the id the request ended with (the new one
  after ``regenerate``), its revision (0 when it does not exist), the node.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, Response, request
from flask.sessions import SessionInterface, SessionMixin

from .ids import valid_sid
from .settings import Settings
from .store import RESERVED_KEY, Meta, NodeSessions, meta_of

_OWN_KEYS = frozenset({"_permanent", RESERVED_KEY})
"""Keys that alone do not make a session (Flask-Session's flag, the kit's meta)."""


class StranglerSessionInterface(SessionInterface):
    """Flask-Session's interface (``backend``), with revisions and the session headers."""

    def __init__(self, sessions: NodeSessions, settings: Settings) -> None:
        self.sessions = sessions
        self.backend: Any = sessions.backend
        self.settings = settings

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        session: SessionMixin | None = self.backend.open_session(app, request)
        return session

    def make_null_session(self, app: Flask) -> Any:
        return self.backend.make_null_session(app)

    def is_null_session(self, obj: object) -> bool:
        return bool(self.backend.is_null_session(obj))

    def regenerate(self, session: Any) -> None:
        """A new id for ``session``, its data kept, the old id's stored copy deleted.

        Unlike Flask-Session's own ``regenerate`` it rotates an empty session too
        (a login must never keep an id the client chose or saw before).
        """
        with self.sessions.lock:
            self.sessions.drop(session.sid)
            session.sid = self.sessions.new_sid()
            session.modified = True

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        carried = request.cookies.get(app.config["SESSION_COOKIE_NAME"])
        carried = carried if valid_sid(carried) else None
        with self.sessions.lock:
            ended = self._save(app, session, response, carried)
            if ended is None and carried is not None:
                ended = carried, meta_of(self.sessions.load(carried)).revision
        if ended is not None:
            names = self.settings.headers
            response.headers[names.session_id] = ended[0]
            response.headers[names.revision] = str(ended[1])
            response.headers[names.node] = self.settings.node_id

    def _save(self, app: Flask, session: Any, response: Response,
              carried: str | None) -> tuple[str, int] | None:
        """Save through Flask-Session; the (id, revision) stored, or ``None`` if none is."""
        stored = self.sessions.load(session.sid)
        if session.modified:
            if set(session) <= _OWN_KEYS:  # emptied (a logout): Flask-Session deletes it
                dict.pop(session, RESERVED_KEY, None)
                self.backend.save_session(app, session, response)
                return None
            if stored is None and session.sid == carried:  # deleted during the request
                session.sid = self.sessions.new_sid()
            meta = meta_of(stored)
            revision = meta.revision + 1
            dict.__setitem__(session, RESERVED_KEY, Meta(revision, meta.imported).value())
            self.backend.save_session(app, session, response)
            return session.sid, revision
        if stored is None:  # nothing to refresh: never bring a deleted session back
            if session.accessed:
                response.vary.add("Cookie")
            return None
        dict.clear(session)
        dict.update(session, stored)
        session.modified = False
        self.backend.save_session(app, session, response)
        return session.sid, meta_of(stored).revision
