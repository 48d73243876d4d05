"""Admin endpoints of the shadow stage (reads, open like the other GETs).

    GET /api/shadow                 every route's summary
    GET /api/routes/{name}/shadow   one route: counts, consistency rate, top
                                    differing paths, learned noise, sampled diff log

``add_routes`` registers them on the admin app; ``app.py`` puts the gateway's
``Shadower`` under ``SHADOWER``. The figures are this gateway process's own.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.shadow.stage import Lane, Shadower

SHADOWER = web.AppKey("shadower", Shadower)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/shadow", all_routes)
    app.router.add_get("/api/routes/{name}/shadow", one_route)


def _shadower(request: web.Request) -> Shadower:
    found = request.app.get(SHADOWER)
    if found is None:
        raise _error(503, "shadow_unavailable", "this gateway keeps no shadow statistics")
    return found


async def all_routes(request: web.Request) -> web.Response:
    shadower = _shadower(request)
    return web.json_response({"routes": [lane.stats.summary() | _rules(lane)
                                         for lane in shadower.lanes.values()]})


async def one_route(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    lane = _shadower(request).lanes.get(name)
    if lane is None:
        raise _error(404, "unknown_route", f"no shadowable route named {name!r} "
                     "(unknown, or legacy_only)")
    return web.json_response(lane.stats.report() | _rules(lane))


def _rules(lane: Lane) -> dict[str, Any]:
    c = lane.config
    return {"rules": {"sample_rate": c.sample_rate, "ignore_paths": list(c.ignore_paths),
                      "ignore_headers": list(c.ignore_headers),
                      "compare_headers": list(c.compare_headers), "learn_noise": c.learn_noise,
                      "noise_sample_rate": c.noise_sample_rate,
                      "noise_threshold": c.noise_threshold}}


def _error(status: int, code: str, detail: str) -> web.HTTPException:
    exc = web.HTTPException(text=json.dumps({"error": code, "detail": detail}),
                            content_type="application/json")
    exc.set_status(status)
    return exc
