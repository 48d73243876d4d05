"""Wiring: the one place that builds a node."""

from __future__ import annotations

from aiohttp import web

from . import hook, routes
from .settings import Settings
from .store import SessionStore
from .users import Users
from .web import SESSIONS, SETTINGS, USERS, session_middleware


def create_app(settings: Settings, users: Users | None = None) -> web.Application:
    """A notes node: sessions in this process's memory, the built-in users unless given."""
    app = web.Application(middlewares=[session_middleware])
    app[SETTINGS] = settings
    app[SESSIONS] = SessionStore()
    app[USERS] = users if users is not None else Users()
    routes.add_routes(app)
    hook.add_routes(app)
    return app
