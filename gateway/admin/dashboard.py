"""The dashboard: the page at ``/`` and its live figures (reads, open like the other GETs).

    GET /            ``dashboard.html``: one self-contained file (inline style
                     and script, no external resource), served with a strict
                     Content-Security-Policy that allows exactly those inline
                     blocks by hash and fetches to this origin only
    GET /api/stats   every route over the last ``window_s`` seconds: requests
                     per second by backend, share on new, 5xx share, p99 --
                     plus the split over the last ``RECENT_S`` seconds (what
                     a flip changes first) and, for routes that pin, the
                     sessions pinned to new (null when Redis did not answer)

The page joins this with ``/api/routes`` and ``/api/ledger`` and sends
changes to ``PUT /api/routes/{name}`` and ``PUT /api/kill-switch`` with the
token the operator typed (kept in the tab's sessionStorage, never in a URL or
localStorage). The figures are this gateway process's own
(``gateway.observe.live_stats``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from importlib import resources

from aiohttp import web

from gateway.admin.api import STATE, AdminState

RECENT_S = 2
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def add_routes(app: web.Application) -> None:
    page = resources.files("gateway.admin").joinpath("dashboard.html").read_text()
    headers = {"Content-Security-Policy": content_security_policy(page),
               "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
               "Cache-Control": "no-store"}

    async def dashboard(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html", headers=headers)

    app.router.add_get("/", dashboard)
    app.router.add_get("/api/stats", stats)


def content_security_policy(page: str) -> str:
    """Nothing but the page's own inline blocks (by hash) and requests to this origin."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(page):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[kind].append(f"'sha256-{digest}'")
    allowed = {kind: " ".join(found) or "'none'" for kind, found in hashes.items()}
    return "; ".join([
        "default-src 'none'", f"script-src {allowed['script']}",
        f"style-src {allowed['style']}", "connect-src 'self'", "img-src data:",
        "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"])


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    live = state.metrics.live
    names = list(state.routes)
    pins = await _pins(state)
    routes = []
    for full, recent in zip(live.snapshot(names), live.snapshot(names, RECENT_S), strict=True):
        out = full.to_dict()
        out["recent"] = {"window_s": round(recent.window_s, 3),
                         "rps": {k: round(v / recent.window_s, 2)
                                 for k, v in recent.requests.items()},
                         "new_share": recent.new_share}
        if full.route in pins:
            out["pins"] = pins[full.route]
        routes.append(out)
    return web.json_response({"window_s": live.window_s, "recent_s": RECENT_S,
                              "routes": routes})


async def _pins(state: AdminState) -> dict[str, int | None]:
    """Pinned sessions per pinning route; None where Redis did not answer."""
    pins = state.service.pins
    pinning = [name for name, route in state.routes.items() if route.pin]
    if pins is None or not pinning:
        return {}
    if not state.store.up:
        return dict.fromkeys(pinning)
    counts = await asyncio.gather(*(pins.count(name) for name in pinning),
                                  return_exceptions=True)
    return {name: c if isinstance(c, int) else None
            for name, c in zip(pinning, counts, strict=True)}
