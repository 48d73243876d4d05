"""The admin listener: health, readiness, metrics, routes, flips, kill switch.

The dashboard page and its live figures are in ``admin_dashboard``; session
discovery (``GET /api/session/schema``) is in ``admin_session``.

Reads are open (bind the listener to a private interface); anything that
changes state needs ``Authorization: Bearer <admin token>``, compared in
constant time. With no token configured, changes are refused (fail closed).
Every request must name this listener as its Host (``gateway.admin_hosts``,
its listen host, or any IP address; ``gateway.edge.hosts``): a page on another name
that rebinds its DNS to this listener gets 421 and reads nothing.

Readiness is about whether this process can serve: during a Redis outage it
stays ready (legacy routes still work) and says ``degraded``; it turns 503
only when no legacy node is healthy or the process is shutting down.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from aiohttp import HttpVersion11, web
from aiohttp.typedefs import Handler
from redis.exceptions import RedisError

from flags import FlagError, Stage, UnknownRoute
from flags.provider import Provider
from flags.service import FlagService, Outcome
from flags.text import inert
from gateway.admin import session as admin_session
from gateway.admin import shadow as admin_shadow
from gateway.edge.hosts import AdminHosts
from gateway.errors import UnknownHost
from gateway.observe.metrics import Metrics
from gateway.routing.breaker import Breaker
from gateway.routing.explain import Explainer
from gateway.routing.routes import Route
from gateway.session.port import SessionStorePort
from gateway.upstream.pools import LegacyPool, NewPool


class AdminState:
    """What the admin endpoints read; built by ``app.py``."""

    def __init__(self, *, provider: Provider, service: FlagService, routes: dict[str, Route],
                 breakers: dict[str, Breaker], store: SessionStorePort, legacy: LegacyPool,
                 new: NewPool, metrics: Metrics, tokens: dict[str, str]) -> None:
        self.provider = provider
        self.service = service
        self.routes = routes
        self.breakers = breakers
        self.store = store
        self.legacy = legacy
        self.new = new
        self.metrics = metrics
        self.tokens = tokens
        """admin token name -> token"""
        self.shutting_down = False
        self.explainer: Explainer | None = None
        self.jwks: Callable[[], dict[str, Any]] = lambda: {"keys": []}
        """The public keys services verify tokens with (``gateway.session.signing.KeyRing``)."""
        self.hosts = AdminHosts(("localhost",))
        """Who this listener answers (``gateway.admin_hosts``); swapped on a reload."""


STATE = web.AppKey("admin_state", AdminState)


@web.middleware
async def _store_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Redis not answering is a 503 the caller can retry, never a 500.

    A change sent just before Redis hung may still be applied when it wakes:
    the answer says so, and ``GET /api/routes`` tells what holds.
    """
    try:
        return await handler(request)
    except (RedisError, OSError) as exc:
        detail = (f"the flag store did not answer ({type(exc).__name__}); a change may or "
                  "may not have been applied: read GET /api/routes before trying again")
        raise _error(503, "flag_store_unavailable", detail, {"Retry-After": "1"}) from None


@web.middleware
async def _own_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A DNS-rebinding page reaches this listener under its own name: 421, before any
    handler reads anything; a malformed Host: 400."""
    state = request.app[STATE]
    refusal = state.hosts.refusal(request.headers.getall("Host", []),
                                  http10=request.version < HttpVersion11)
    if refusal is None:
        return await handler(request)
    state.metrics.host_refused.labels("admin", refusal.code).inc()
    status = 421 if isinstance(refusal, UnknownHost) else 400
    raise _error(status, refusal.code, refusal.detail, {"Connection": "close"})


def create_admin_app(state: AdminState) -> web.Application:
    app = web.Application(client_max_size=64 * 1024, middlewares=[_own_host, _store_errors])
    app[STATE] = state
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/.well-known/jwks.json", jwks)
    app.router.add_get("/api/routes", list_routes)
    app.router.add_put("/api/routes/{name}", put_route)
    app.router.add_get("/api/kill-switch", get_kill)
    app.router.add_put("/api/kill-switch", put_kill)
    from gateway.admin import dashboard as admin_dashboard
    from gateway.admin import flags as admin_flags  # they import this module's helpers

    admin_flags.add_routes(app)
    admin_dashboard.add_routes(app)
    admin_shadow.add_routes(app)
    admin_session.add_routes(app)
    return app


async def jwks(request: web.Request) -> web.Response:
    """The gateway's public signing keys (RFC 7517): public, like any JWKS. Services fetch
    it when a token names a ``kid`` they do not know, and now and then."""
    return web.json_response(request.app[STATE].jwks(),
                             headers={"Cache-Control": "public, max-age=30"})


def _authorized(request: web.Request) -> str:
    """The name of the admin token presented (the ledger's "who"); 401 otherwise."""
    state = request.app[STATE]
    if not state.tokens:
        raise _error(503, "admin_token_unset", "no admin token configured; changes are refused")
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    given = presented.strip().encode()
    found = None
    for name, token in state.tokens.items():
        # every token is compared, match or not: timing says nothing about which
        if hmac.compare_digest(given, token.encode()) and scheme.lower() == "bearer":
            found = name
    if found is None:
        raise _error(401, "unauthorized", "a valid bearer token is required",
                     {"WWW-Authenticate": 'Bearer realm="strangler-admin"'})
    return found


def _error(status: int, code: str, detail: str,
           headers: dict[str, str] | None = None) -> web.HTTPException:
    exc = web.HTTPException(text=json.dumps({"error": code, "detail": detail}),
                            content_type="application/json", headers=headers)
    exc.set_status(status)
    return exc


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise _error(400, "bad_request", "body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _error(400, "bad_request", "body must be a JSON object")
    return body


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    degraded = []
    if not state.store.up:
        degraded.append("session_store_down: legacy-only sticky routing")
    if not state.provider.healthy:
        degraded.append("flag_store_unreachable: serving the last known flags")
    if not state.new.healthy:
        degraded.append("no_healthy_new_instance")
    ready = bool(state.legacy.healthy) and not state.shutting_down
    body = {
        "status": "shutting_down" if state.shutting_down else
        ("unavailable" if not ready else ("degraded" if degraded else "ready")),
        "degraded": degraded,
        "session_store": "up" if state.store.up else "down",
        "legacy_nodes": {m.id: m.healthy for m in state.legacy.members.values()},
        "new_instances": {m.id: m.healthy for m in state.new.members.values()},
        "flag_version": state.provider.view.state.version,
    }
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    m = request.app[STATE].metrics
    resp = web.Response(body=m.render())
    resp.headers["Content-Type"] = m.content_type
    return resp


def _route_json(state: AdminState, name: str) -> dict[str, Any]:
    view = state.provider.view
    flag = view.flag(name)
    route = state.routes[name]
    out: dict[str, Any] = {"name": name, "legacy_only": route.legacy_only,
                           "breaker": state.breakers[name].state.name.lower()}
    if flag is not None:
        out.update(flag.to_dict())
    else:
        out.update({"stage": Stage.LEGACY.value, "percent": 0})
    out["effective"] = "legacy (kill switch)" if view.kill_switch else out["stage"]
    for key in ("updated_by", "reason"):  # may predate the input check: shown inert
        if isinstance(out.get(key), str):
            out[key] = inert(out[key])
    return out


async def list_routes(request: web.Request) -> web.Response:
    state = request.app[STATE]
    view = state.provider.view
    return web.json_response({
        "kill_switch": view.kill_switch,
        "flag_version": view.state.version,
        "routes": [_route_json(state, name) for name in state.routes],
    })


async def put_route(request: web.Request) -> web.Response:
    actor = _authorized(request)
    state = request.app[STATE]
    name = request.match_info["name"]
    body = await _json_body(request)
    unknown = set(body) - {"stage", "percent", "reason"}
    if unknown:
        raise _error(400, "bad_request", f"unknown field(s): {', '.join(sorted(unknown))}")
    route = state.routes.get(name)
    if route is None:
        raise _error(404, "unknown_route", f"no route named {name!r}")
    if route.legacy_only:
        raise _error(409, "legacy_only", f"route {name!r} has no new implementation")
    stage_raw, percent = body.get("stage"), body.get("percent")
    if not isinstance(stage_raw, str) or stage_raw not in {s.value for s in Stage}:
        raise _error(400, "bad_request", f"stage must be one of {[s.value for s in Stage]}")
    if percent is not None and (not isinstance(percent, int) or isinstance(percent, bool)):
        raise _error(400, "bad_request", "percent must be an integer 0..100")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise _error(400, "bad_request", "reason must be a string")
    try:
        outcome = await state.service.flip(name, Stage(stage_raw), percent, actor=actor,
                                           source="admin-api", reason=reason)
    except UnknownRoute as exc:
        raise _error(404, "unknown_route", str(exc)) from None
    except FlagError as exc:
        raise _error(400, "bad_request", str(exc)) from None
    body = _route_json(state, name)
    body.update(_outcome_json(outcome))
    return web.json_response(body)


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    out: dict[str, Any] = {"moved": list(outcome.change.moved), "ledger": outcome.ledger_ids,
                           "flag_version": outcome.change.version}
    if outcome.pins_cleared:
        out["pins_cleared"] = outcome.pins_cleared
    if outcome.ledger_error:
        out["ledger_error"] = f"applied, but not recorded in the ledger: {outcome.ledger_error}"
    return out


async def get_kill(request: web.Request) -> web.Response:
    return web.json_response({"on": request.app[STATE].provider.view.kill_switch})


async def put_kill(request: web.Request) -> web.Response:
    actor = _authorized(request)
    state = request.app[STATE]
    body = await _json_body(request)
    on = body.get("on")
    if not isinstance(on, bool):
        raise _error(400, "bad_request", "on must be true or false")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise _error(400, "bad_request", "reason must be a string")
    try:
        outcome = await state.service.kill(on, actor=actor, source="admin-api", reason=reason)
    except FlagError as exc:  # a reason the ledger would not take (flags.text)
        raise _error(400, "bad_request", str(exc)) from None
    return web.json_response({"on": state.provider.view.kill_switch, **_outcome_json(outcome)})
