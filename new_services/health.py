"""``GET /healthz`` (the process answers) and ``GET /readyz`` (its stores answer too)."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web
from sqlalchemy import text

from strangler_sdk.aiohttp import SDK

from .appkeys import ENGINE, SETTINGS

log = structlog.get_logger("new_services.health")

PROBE_TIMEOUT_S = 1.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "instance": request.app[SETTINGS].instance_id})


async def _redis_ok(app: web.Application) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            return bool(await app[SDK].redis.ping())
    except Exception as exc:  # any failure means "not ready", and says why in the log
        log.warning("readiness_probe_failed", store="redis", error=type(exc).__name__)
        return False


async def _db_ok(app: web.Application) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S), app[ENGINE].connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception as exc:
        log.warning("readiness_probe_failed", store="db", error=type(exc).__name__)
        return False


async def readyz(request: web.Request) -> web.Response:
    redis_ok, db_ok = await asyncio.gather(_redis_ok(request.app), _db_ok(request.app))
    ready = redis_ok and db_ok
    body = {"status": "ready" if ready else "unavailable",
            "instance": request.app[SETTINGS].instance_id, "redis": redis_ok, "db": db_ok}
    return web.json_response(body, status=200 if ready else 503)


def register(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
