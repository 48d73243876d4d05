"""Admin endpoint of session discovery (a read, open like the other GETs).

    GET /api/session/schema   what this process's sampler has seen of the monolith's
                              sessions -- statistics per key path, never a value --
                              and the ``session:`` block they suggest

The proposed block takes the cookie, ``duplicate_cookies`` and headers from the
profile this gateway runs (a session does not tell them); everything else comes
from the samples alone. ``app.py`` puts a ``Discovery`` under ``DISCOVERY``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

from adapters.discovery import propose
from adapters.profile import SessionProfile
from gateway.session.sampler import SessionSampler


@dataclass(frozen=True, slots=True)
class Discovery:
    sampler: SessionSampler
    profile: SessionProfile
    """The running profile: its cookie and headers go into the proposal."""


DISCOVERY = web.AppKey("session_discovery", Discovery)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/session/schema", schema)


async def schema(request: web.Request) -> web.Response:
    found = request.app.get(DISCOVERY)
    if found is None:
        exc = web.HTTPException(text=json.dumps({
            "error": "discovery_unavailable",
            "detail": "this gateway samples no sessions"}), content_type="application/json")
        exc.set_status(503)
        raise exc
    summary = await found.sampler.summary()
    profile = found.profile
    proposal = propose(summary, cookie=profile.cookie, duplicate_cookies=profile.duplicates,
                       headers=dict(zip(("session_id", "revision", "node"),
                                        profile.response_headers, strict=True)),
                       note="cookie, duplicate_cookies and headers: as this gateway runs them")
    return web.json_response({"sampling": found.sampler.status(), "stats": summary.to_json(),
                              "proposal": proposal.to_json()})
