"""``POST /api/reload``: re-read config.yaml now (the admin-API twin of SIGHUP).

Needs the bearer admin token. Answers 200 (applied or unchanged), 422 (the
file is invalid: the error names the key), 409 (valid, but a change needs a
restart: the keys are named). On a refusal the running config keeps serving.
``app.py`` puts the process's ``Reloader`` under ``RELOADER``.
"""

from __future__ import annotations

from aiohttp import web

from gateway.admin.api import _authorized, _error
from gateway.runtime.reload import Reloader, Status

RELOADER = web.AppKey("reloader", Reloader)

_STATUS = {Status.APPLIED: 200, Status.UNCHANGED: 200, Status.INVALID: 422,
           Status.NEEDS_RESTART: 409}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/reload", reload)


async def reload(request: web.Request) -> web.Response:
    actor = _authorized(request)
    reloader = request.app.get(RELOADER)
    if reloader is None:
        raise _error(503, "reload_unavailable", "this gateway was not started from a config "
                     "file; there is nothing to reload")
    outcome = await reloader.reload(f"admin-api:{actor}")
    body = outcome.to_dict()
    if outcome.status is Status.APPLIED and reloader.notify is not None:
        # Workers: this process applied it; the supervisor tells the others (SIGHUP).
        reloader.notify()
        body["workers"] = "signalled"
    return web.json_response(body, status=_STATUS[outcome.status])
