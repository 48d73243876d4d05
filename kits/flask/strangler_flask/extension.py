"""``Strangler(app)`` / ``init_app``: checks the session setup, wires the kit in.

Call it after Flask-Session's ``Session(app)``: it wraps the server-side
session interface (``interface.StranglerSessionInterface``) and registers the
hook's blueprint (``hook``). It refuses, with a ``StranglerConfigError`` that
says what to do, Flask's default session (the data lives in a signed cookie on
the client: a node holds nothing to export), any interface that is not
Flask-Session's server-side one, and ``SESSION_USE_SIGNER`` (the cookie value
would not be the session id the gateway and the hook speak of).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, session
from flask.sessions import SecureCookieSessionInterface

from . import hook
from .errors import StranglerConfigError
from .ids import AnySidConverter
from .interface import StranglerSessionInterface
from .settings import Settings, from_config
from .store import NodeSessions

DEFAULT_SESSION_REFUSED = (
    "Strangler(app): Flask's default session (SecureCookieSessionInterface) keeps the whole "
    "session in a signed cookie on the client, so a node holds nothing to export and the "
    "gateway cannot share it. Use server-side sessions: Flask-Session with a node-local "
    "store, e.g. app.config.update(SESSION_TYPE='cachelib', "
    "SESSION_CACHELIB=cachelib.SimpleCache()); flask_session.Session(app) -- then "
    "Strangler(app).")


@dataclass(frozen=True, slots=True)
class KitState:
    """What the hook's views find in ``app.extensions["strangler"]``."""

    settings: Settings
    sessions: NodeSessions


class Strangler:
    """The Flask extension: ``Strangler(app)``, or ``Strangler()`` then ``init_app(app)``."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        settings = from_config(app.config)
        backend = server_side_interface(app)
        sessions = NodeSessions(app, backend)
        app.session_interface = StranglerSessionInterface(sessions, settings)
        app.url_map.converters["strangler_sid"] = AnySidConverter
        app.register_blueprint(hook.blueprint())
        app.extensions[hook.EXTENSION] = KitState(settings, sessions)


def server_side_interface(app: Flask) -> Any:
    """Flask-Session's interface on ``app``, or ``StranglerConfigError`` saying why not."""
    from flask_session.base import ServerSideSessionInterface

    interface = app.session_interface
    if isinstance(interface, StranglerSessionInterface):
        raise StranglerConfigError("Strangler(app): this app is set up already (init_app "
                                   "was called twice)")
    if isinstance(interface, SecureCookieSessionInterface):
        raise StranglerConfigError(DEFAULT_SESSION_REFUSED)
    if not isinstance(interface, ServerSideSessionInterface):
        raise StranglerConfigError(
            f"Strangler(app): app.session_interface is a {type(interface).__name__}; the kit "
            "works on Flask-Session's server-side sessions (flask_session.Session(app) "
            "first, then Strangler(app))")
    if interface.use_signer:
        raise StranglerConfigError(
            "Strangler(app): SESSION_USE_SIGNER is on, so the session cookie's value is not "
            "the session id the gateway and the hook name; turn it off (Flask-Session "
            "deprecates it: the id is 256 random bits already)")
    return interface


def regenerate() -> None:
    """Give the current request's session a new id, its data kept (call it at login).

    The old id's stored copy is deleted at once; the response sets the new
    cookie and its session header names the new id.
    """
    interface = current_app.session_interface
    if not isinstance(interface, StranglerSessionInterface):
        raise RuntimeError("strangler_flask.regenerate(): Strangler(app) is not set up")
    interface.regenerate(session._get_current_object())  # type: ignore[attr-defined]
