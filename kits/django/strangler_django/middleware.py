"""``RevisionMiddleware``: a revision per session, and the three headers on every response.

Place it right after ``django.contrib.sessions.middleware.SessionMiddleware``
(checked at start). Its ``process_response`` runs before SessionMiddleware's,
so the revision it writes into the session is part of the save that follows:

- a change the app made (``request.session.modified``) on a response Django
  will save (status < 500, session not emptied): revision + 1, counted from the
  higher of the revision the request loaded and the one the engine holds now
  (an import may have landed meanwhile), so the number never repeats;
- a new session: revision 1, saved here at once so the headers can name its id;
- a login (``cycle_key``) carries the data, revision included, to the new id:
  the count goes on.

Headers, on every response to a request that carried the session cookie or
created a session: the session id the request ended with (the cookie's when
the session is gone), its revision (0 when it does not exist: never existed,
logged out, expired, lost), and the node id.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

from strangler_django import conf, locks, sessions
from strangler_django.revision import RESERVED, REV_KEY, revision_value

Handler = Callable[[HttpRequest], HttpResponseBase]


class RevisionMiddleware(MiddlewareMixin):  # type: ignore[misc]  # Django ships no stubs
    def __init__(self, get_response: Handler) -> None:
        conf.check_environment()
        self._settings = conf.get()
        super().__init__(get_response)

    def process_response(self, request: HttpRequest,
                         response: HttpResponseBase) -> HttpResponseBase:
        session: SessionBase | None = getattr(request, "session", None)
        if session is None:
            return response
        cookie_sid = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        if session.modified and response.status_code < 500 and _will_be_saved(session):
            _bump(session, cookie_sid)
        if session.session_key is None and not cookie_sid:
            return response
        stored = session.get(REV_KEY)  # loads the session if the view did not
        sid = session.session_key
        names = self._settings
        response[names.session_header] = sid or cookie_sid or ""
        response[names.revision_header] = str(revision_value(stored) if sid else 0)
        response[names.node_header] = names.node_id
        return response


def _will_be_saved(session: SessionBase) -> bool:
    """SessionMiddleware saves a modified session unless it is empty (flushed, logged out)."""
    return session.session_key is not None or any(k not in RESERVED for k in session.keys())


def _bump(session: SessionBase, cookie_sid: str | None) -> None:
    sid = session.session_key
    if sid is None:
        session[REV_KEY] = 1
        session.save()  # creates it now, under a new id the headers can report
        return
    carried = session.get(REV_KEY)
    if sid != cookie_sid:
        # made during this request (``cycle_key`` at login): no one else knows the id yet,
        # and the data it carried holds the count so far (none: a brand-new session)
        session[REV_KEY] = (carried if type(carried) is int and carried > 0 else 0) + 1
        return
    with locks.for_session(sid):
        loaded = revision_value(carried)
        session[REV_KEY] = max(loaded, sessions.stored_revision(sid)) + 1
