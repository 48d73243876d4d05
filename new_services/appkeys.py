"""Typed keys of the app state; set in ``app.make_app``'s cleanup contexts only."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from .passwords import Passwords
from .redis_client import RedisClient
from .sessions import SessionStore
from .settings import Settings
from .tokens import TokenVerifier

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
REDIS: web.AppKey[RedisClient] = web.AppKey("redis")
SESSIONS = web.AppKey("sessions", SessionStore)
VERIFIER = web.AppKey("verifier", TokenVerifier)
PASSWORDS = web.AppKey("passwords", Passwords)
HTTP = web.AppKey("http", aiohttp.ClientSession)
"""For the gateway's key set (``/.well-known/jwks.json``)."""
