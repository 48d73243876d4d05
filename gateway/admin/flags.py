"""Admin endpoints around flag changes: the ledger, pins, and explain."""

from __future__ import annotations

import re

from aiohttp import web

from adapters.handles import valid_cookie_id
from gateway.admin.api import STATE, _authorized, _error

_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{1,256}")
"""RFC 6265 cookie-octets: whatever a client's ``strangler_cid`` cookie can hold."""


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/ledger", ledger)
    app.router.add_delete("/api/routes/{name}/pins", unpin)
    app.router.add_get("/api/explain", explain)


async def ledger(request: web.Request) -> web.Response:
    """``?route=cart&limit=50``: newest first (the kill switch shows for every route)."""
    state = request.app[STATE]
    route = request.query.get("route")
    if route is not None and route not in state.routes:
        raise _error(404, "unknown_route", f"no route named {route!r}")
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise _error(400, "bad_request", "limit must be an integer") from None
    if not 1 <= limit <= 1000:
        raise _error(400, "bad_request", "limit must be within 1..1000")
    entries = await state.service.ledger.history(route, limit) if state.service.ledger else []
    return web.json_response({"entries": [e.to_dict() for e in entries]})


async def unpin(request: web.Request) -> web.Response:
    actor = _authorized(request)
    state = request.app[STATE]
    name = request.match_info["name"]
    if name not in state.routes:
        raise _error(404, "unknown_route", f"no route named {name!r}")
    count = await state.service.unpin(name, actor=actor, source="admin-api")
    return web.json_response({"route": name, "pins_cleared": count})


async def explain(request: web.Request) -> web.Response:
    """``?method=GET&path=/api/cart&session=SID&cid=CID``: the decision and every step
    behind it. ``cid`` is the client's ``strangler_cid`` cookie: without a session, a
    canary buckets the request by it, as the pipeline does."""
    state = request.app[STATE]
    method = request.query.get("method", "GET").upper()
    path = request.query.get("path")
    session = request.query.get("session") or None
    cid = request.query.get("cid") or None
    if not path or not path.startswith("/"):
        raise _error(400, "bad_request", "path must be given and start with '/'")
    if session is not None and not valid_cookie_id(session):
        raise _error(400, "bad_request", "session is not a valid session id")
    if cid is not None and not _COOKIE_VALUE.fullmatch(cid):
        raise _error(400, "bad_request", "cid is not a cookie value (1-256 cookie octets)")
    if state.explainer is None:
        raise _error(503, "unavailable", "explain is not wired in this process")
    return web.json_response(await state.explainer.explain(method, path, session, cid))
