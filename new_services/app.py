"""The one place that wires an instance: settings, stores, middlewares, routes.

Nothing connects here at import or build time: the engine, the SDK (its key
set, Redis client and sessions: ``strangler_sdk.aiohttp.setup``) and the dummy
password hash are made in ``cleanup_ctx`` when the app starts, and closed in
reverse order when it stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from strangler_sdk.aiohttp import setup
from strangler_sdk.config import SdkSettings
from strangler_sdk.redis_client import RedisClient, make_client

from . import auth, cart, catalog, checkout, health, orders
from .appkeys import ENGINE, PASSWORDS, SETTINGS
from .db import make_engine
from .middleware import MIDDLEWARES
from .passwords import Passwords
from .settings import Settings

SERVICES = (health, catalog, cart, checkout, orders, auth)


def make_app(settings: Settings) -> web.Application:
    """A ready-to-run application for one instance; stores connect when it starts."""
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_database)
    setup(app, sdk_settings(settings), lambda: redis_client(settings))
    app.cleanup_ctx.append(_passwords)
    for service in SERVICES:
        service.register(app)
    return app


def sdk_settings(settings: Settings) -> SdkSettings:
    """The shop reads its sessions through ``ShopSession`` (no profile needed)."""
    return SdkSettings(issuer=settings.jwt_issuer, jwks_url=settings.jwks_url,
                       jwks_file=settings.jwks_path, key_prefix=settings.key_prefix,
                       session_ttl_s=settings.session_ttl_s, leeway_s=settings.jwt_leeway_s,
                       cas_attempts=settings.cas_attempts,
                       token_cache_size=settings.token_cache_size, session_key=settings.session_key)


def redis_client(settings: Settings) -> RedisClient:
    return make_client(settings.redis_url, sentinel=settings.redis_sentinel,
                       cluster=settings.redis_cluster, password=settings.redis_password,
                       sentinel_password=settings.redis_sentinel_password)


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = make_engine(app[SETTINGS].database_url)
    app[ENGINE] = engine
    yield
    await engine.dispose()


async def _passwords(app: web.Application) -> AsyncIterator[None]:
    app[PASSWORDS] = await Passwords.create()
    yield
