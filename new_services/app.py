"""The one place that wires an instance: settings, stores, middlewares, routes.

Nothing connects here at import or build time: the engine, the Redis client,
the key set and the dummy password hash are made in ``cleanup_ctx`` when the
app starts, and closed in reverse order when it stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from . import auth, cart, catalog, checkout, health, orders
from .appkeys import ENGINE, HTTP, PASSWORDS, REDIS, SESSIONS, SETTINGS, VERIFIER
from .db import make_engine
from .middleware import MIDDLEWARES
from .passwords import Passwords
from .redis_client import make_client
from .sessions import SessionStore
from .settings import Settings
from .tokens import KeySet, TokenVerifier, load_jwks

SERVICES = (health, catalog, cart, checkout, orders, auth)


def make_app(settings: Settings) -> web.Application:
    """A ready-to-run application for one instance; stores connect when it starts."""
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.extend([_tokens, _database, _redis, _passwords])
    for service in SERVICES:
        service.register(app)
    return app


async def _tokens(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    keys = await asyncio.to_thread(load_jwks, settings.jwks_path)
    keyset = KeySet(keys, settings.jwks_url)
    app[VERIFIER] = TokenVerifier(keyset, issuer=settings.jwt_issuer,
                                  leeway_s=settings.jwt_leeway_s,
                                  cache_size=settings.token_cache_size)
    app[HTTP] = http = aiohttp.ClientSession()
    refresher = asyncio.create_task(_refresh_keys(keyset, http))
    yield
    refresher.cancel()
    await asyncio.gather(refresher, return_exceptions=True)
    await http.close()


async def _refresh_keys(keyset: KeySet, http: aiohttp.ClientSession) -> None:
    """Now and then, so a key the gateway retired stops verifying here too."""
    if keyset.url is None:
        return
    while True:
        await keyset.refresh(http)
        await asyncio.sleep(keyset.refresh_s)


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = make_engine(app[SETTINGS].database_url)
    app[ENGINE] = engine
    yield
    await engine.dispose()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = make_client(settings)
    app[REDIS] = client
    app[SESSIONS] = SessionStore(client, prefix=settings.key_prefix,
                                 ttl_s=settings.session_ttl_s, attempts=settings.cas_attempts,
                                 handle_key=settings.session_key)
    yield
    await client.aclose()


async def _passwords(app: web.Application) -> AsyncIterator[None]:
    app[PASSWORDS] = await Passwords.create()
    yield
