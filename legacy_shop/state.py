"""Typed keys for app and request state; depends only on the leaf modules it names."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from legacy_shop.sessions import SessionStore
from legacy_shop.settings import Settings


@dataclass(slots=True)
class RequestSession:
    """Which session a request came with and which it ends with.

    ``sid`` starts as the cookie's value and becomes the new id after a login;
    ``created`` says the request made a session. The export hook reads both to
    tell the gateway what happened.
    """

    cookie_sid: str | None
    sid: str | None
    created: bool = False


SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", SessionStore)
BOOT_ID = web.AppKey("boot_id", str)

REQUEST_SESSION = web.RequestKey("request_session", RequestSession)
