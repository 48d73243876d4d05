"""Typed keys of the app state; set in ``app.make_app``'s cleanup contexts only.
The SDK's objects (verifier, sessions, Redis) are under ``strangler_sdk.aiohttp.SDK``."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from .passwords import Passwords
from .settings import Settings

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
PASSWORDS = web.AppKey("passwords", Passwords)
