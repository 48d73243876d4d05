"""The one place that wires the service: the SDK (audience ``trips``), the engine, routes.

Every handler reads the caller's session through ``strangler_sdk.aiohttp.Caller``
and changes it with a pure function of the document, by field name and rule
(``SessionData``): the SDK re-applies it on a conflict and writes it once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from strangler_sdk.aiohttp import caller, middlewares, setup
from strangler_sdk.config import SdkSettings
from strangler_sdk.fields import SessionData
from strangler_sdk.redis_client import RedisClient, make_client

from . import db, rules

AUDIENCE = "trips"
DETAILS = {"not_found": "no such route", "not_logged_in": "log in first"}
"""The Django app's texts where the SDK's defaults differ."""
EMPTY_STATE: dict[str, Any] = {"prefs": {}, "saved": [], "views": {}, "recent": [],
                               "wizard": {}, "draft": None}


@dataclass(frozen=True, slots=True)
class Options:
    instance_id: str
    database_url: str
    redis_url: str
    sdk: SdkSettings


OPTIONS = web.AppKey("options", Options)
ENGINE = web.AppKey("engine", AsyncEngine)


def make_app(options: Options) -> web.Application:
    """A ready-to-run app; nothing connects until it starts."""
    if options.sdk.profile is None:
        raise ValueError("the trips service needs the session profile (config.yaml)")
    app = web.Application(middlewares=middlewares(AUDIENCE, details=DETAILS),
                          client_max_size=rules.MAX_BODY_BYTES)
    app[OPTIONS] = options
    app.cleanup_ctx.append(_database)
    setup(app, options.sdk, lambda: _redis(options))
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/api/me", me)
    r.add_get("/api/destinations", list_destinations)
    r.add_get("/api/destinations/{slug}", get_destination)
    r.add_get("/api/state", state)
    r.add_put("/api/prefs/{key}", put_pref)
    r.add_delete("/api/prefs/{key}", delete_pref)
    r.add_put("/api/saved/{slug}", put_saved)
    r.add_delete("/api/saved/{slug}", delete_saved)
    r.add_post("/api/views/{slug}", viewed)
    r.add_delete("/api/wizard", clear_wizard)
    r.add_put("/api/wizard/{step}", put_step)
    r.add_put("/api/draft", put_draft)
    return app


def _redis(options: Options) -> RedisClient:
    return make_client(options.redis_url)


async def _database(app: web.Application) -> AsyncIterator[None]:
    app[ENGINE] = engine = db.make_engine(app[OPTIONS].database_url)
    yield
    await engine.dispose()


def ok(body: dict[str, Any]) -> web.Response:
    return web.json_response(body)


def user_json(session: SessionData) -> dict[str, Any]:
    """The contract's user from the session's identity (``username`` is a claim)."""
    user = session.user
    assert user is not None  # Caller.session only returns the token user's own session
    username = user.claims.get("username")
    return {"id": str(user.id), "username": username, "name": user.name or username}


async def change(request: web.Request,
                 edit: Callable[[SessionData], SessionData]) -> SessionData:
    return await caller(request).update(edit)


async def known_slug(request: web.Request) -> str:
    """The path's destination slug, if Django's table has it; else 404."""
    slug = request.match_info["slug"]
    if not rules.SLUG.fullmatch(slug) or await db.one_destination(request.app[ENGINE],
                                                                   slug) is None:
        raise rules.NotFound(f"no destination {slug!r}")
    return slug


# -------------------------------------------------------------------- handlers
async def healthz(request: web.Request) -> web.Response:
    return ok({"status": "ok", "instance": request.app[OPTIONS].instance_id})


async def me(request: web.Request) -> web.Response:
    return ok({"user": user_json(await caller(request).session())})


async def list_destinations(request: web.Request) -> web.Response:
    return ok({"destinations": await db.all_destinations(request.app[ENGINE])})


async def get_destination(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    found = await db.one_destination(request.app[ENGINE], slug) \
        if rules.SLUG.fullmatch(slug) else None
    if found is None:
        raise rules.NotFound(f"no destination {slug!r}")
    return ok({"destination": found})


async def state(request: web.Request) -> web.Response:
    session = await caller(request).session()
    body = {name: session.doc.fields.get(name, empty) for name, empty in EMPTY_STATE.items()}
    return ok({"user": user_json(session), **body})


async def put_pref(request: web.Request) -> web.Response:
    await caller(request).session()  # 401 before reading the body, as Django does
    body = rules.body_object(await request.read())  # Django's order: body, key, value
    key = rules.pref_key(request.match_info["key"])
    value = rules.pref_value(body.get("value"))
    session = await change(request, lambda s: s.put("prefs", key, value))
    return ok({"prefs": session.get("prefs")})


async def delete_pref(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    session = await change(request, lambda s: s.pop("prefs", key)
                           if "prefs" in s.doc.fields else s)
    return ok({"prefs": session.get("prefs")})


async def put_saved(request: web.Request) -> web.Response:
    await caller(request).session()
    slug = await known_slug(request)
    session = await change(request, lambda s: s.add("saved", slug))
    return ok({"saved": session.get("saved")})


async def delete_saved(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    session = await change(request, lambda s: s.discard("saved", slug)
                           if "saved" in s.doc.fields else s)
    return ok({"saved": session.get("saved")})


async def viewed(request: web.Request) -> web.Response:
    await caller(request).session()
    slug = await known_slug(request)
    session = await change(request, lambda s: s.count("views", slug, 1).set(
        "recent", rules.recent_after(s.get("recent") or [], slug)))
    return ok({"views": session.get("views"), "recent": session.get("recent")})


async def put_step(request: web.Request) -> web.Response:
    await caller(request).session()
    step = rules.step(request.match_info["step"])
    answers = rules.wizard_answers(rules.body_json(await request.read()))
    session = await change(request, lambda s: s.put("wizard", step, answers))
    return ok({"wizard": session.get("wizard")})


async def clear_wizard(request: web.Request) -> web.Response:
    await change(request, lambda s: s.set("wizard", {}) if s.get("wizard") else s)
    return ok({"wizard": {}})


async def put_draft(request: web.Request) -> web.Response:
    await caller(request).session()
    text = rules.draft_text(rules.body_json(await request.read()))
    session = await change(request, lambda s: s.set("draft", text))
    return ok({"draft": session.get("draft")})
