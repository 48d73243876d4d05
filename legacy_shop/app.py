"""Wiring: the one place that builds a node from its settings."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from legacy_shop import api, export_hook, pages
from legacy_shop.db import make_engine
from legacy_shop.errors import error_middleware
from legacy_shop.log import request_context
from legacy_shop.seed import prepare_database
from legacy_shop.sessions import SessionStore
from legacy_shop.settings import Settings
from legacy_shop.state import BOOT_ID, ENGINE, SESSIONS, SETTINGS
from legacy_shop.web_sessions import session_middleware

log = structlog.get_logger(__name__)


def create_app(settings: Settings) -> web.Application:
    """A monolith node. Nothing connects until the app starts (``cleanup_ctx``)."""
    app = web.Application(
        # Outermost first: the request id covers everything; the session headers
        # are stamped on error responses too; the session is known to all handlers.
        middlewares=[
            request_context,
            export_hook.session_headers,
            error_middleware,
            session_middleware,
        ],
    )
    app[SETTINGS] = settings
    # Changes whenever the node restarts, so a watcher can tell "restarted"
    # (every session lost) from "still the same process".
    app[BOOT_ID] = secrets.token_hex(8)
    app[SESSIONS] = SessionStore(settings.session_idle_s)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_session_sweeper)
    api.add_routes(app)
    pages.add_routes(app)
    export_hook.add_routes(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = make_engine(settings.database_url)
    try:
        if settings.init_db:
            await prepare_database(engine)
        app[ENGINE] = engine
        log.info("node_started", node=settings.node_id, boot_id=app[BOOT_ID],
                 backend=engine.dialect.name)
        yield
    finally:
        await engine.dispose()


async def _session_sweeper(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_sweep(app[SESSIONS], app[SETTINGS].sweep_interval_s))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _sweep(store: SessionStore, interval_s: float) -> None:
    # Expired sessions are also refused on lookup; sweeping only frees memory.
    while True:
        await asyncio.sleep(interval_s)
        if dropped := store.sweep():
            log.info("sessions_expired", count=dropped, live=len(store))
