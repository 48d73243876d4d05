"""The session-export hook: the monolith's one concession to the migration.

docs/protocol.md section 4. Two parts:

- a middleware that tells the gateway, on every response to a request that
  carried a ``shop_session`` cookie or created a session, which session the
  request ended with and its revision (0 when it does not exist);
- ``/_internal/sessions/{sid}``: GET exports a session in the legacy export
  shape, PUT imports one (compare-and-set on the revision), DELETE drops it.
  All three require the internal token; without one configured they are off.

An import is checked by the shop's own rules for its own session shape
(``sessions.check_data``), as any monolith would check what it is handed; the
shared document and its profile are the gateway's business, not the node's.
This is the only module of ``legacy_shop`` that imports ``adapters``: header
names from ``adapters.wire`` and the session-id rule of ``adapters.store``.
"""

from __future__ import annotations

import hmac
from collections.abc import MutableMapping
from typing import Any

import structlog
from aiohttp import web

from adapters import wire
from adapters.store import valid_session_id
from legacy_shop.errors import ApiError
from legacy_shop.sessions import BadSessionData, check_data
from legacy_shop.state import REQUEST_SESSION, SESSIONS, SETTINGS
from legacy_shop.validation import parse_json, strict_int
from legacy_shop.web_sessions import fingerprint
from legacy_shop.web_util import Handler, json_response

log = structlog.get_logger(__name__)


@web.middleware
async def session_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stamp ``X-Shop-Session-Id/-Rev`` and ``X-Shop-Node`` on session-bearing responses."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and the like are responses too
        _stamp(request, exc.headers)
        raise
    _stamp(request, response.headers)
    return response


def _stamp(request: web.Request, headers: MutableMapping[str, str]) -> None:
    state = request.get(REQUEST_SESSION)
    if state is None or (state.cookie_sid is None and not state.created):
        return
    headers[wire.SESSION_ID_HEADER] = state.sid or ""
    headers[wire.SESSION_REV_HEADER] = str(request.app[SESSIONS].revision(state.sid))
    headers[wire.NODE_HEADER] = request.app[SETTINGS].node_id


def _problem(status: int, code: str, detail: str) -> web.Response:
    return json_response({"error": code, "detail": detail}, status=status)


def _refusal(request: web.Request) -> web.Response | None:
    """``None`` if the caller holds the internal token, else the answer to give."""
    token = request.app[SETTINGS].internal_token
    if not token:
        return _problem(503, "internal_disabled", "no internal token is configured on this node")
    given = request.headers.get(wire.INTERNAL_TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8")):
        log.warning("internal_auth_failed", method=request.method)
        return _problem(403, "forbidden", "missing or wrong internal token")
    return None


async def export_session(request: web.Request) -> web.Response:
    if (refusal := _refusal(request)) is not None:
        return refusal
    sid = request.match_info["sid"]
    if not valid_session_id(sid):
        return _problem(404, "not_found", "no such session")
    fence_raw = request.headers.get(wire.FENCE_HEADER)
    if fence_raw is not None:
        fence = int(fence_raw) if fence_raw.isascii() and fence_raw.isdigit() \
            and len(fence_raw) <= 19 else None
        if fence is None:
            return _problem(400, "bad_request", f"{wire.FENCE_HEADER} must be a non-negative int")
        request.app[SESSIONS].fence(sid, fence)  # a lower one is only noted, never refused
    session = request.app[SESSIONS].peek(sid)
    if session is None:
        return _problem(404, "not_found", "no such session")
    log.info("session_exported", session=fingerprint(sid), revision=session.revision)
    body: dict[str, Any] = {
        "session_id": sid,
        "revision": session.revision,
        "node": request.app[SETTINGS].node_id,
        "data": session.export(),
    }
    if session.imported is not None:
        body["imported"] = {"fence": session.imported[0], "revision": session.imported[1]}
    return json_response(body)


async def import_session(request: web.Request) -> web.Response:
    if (refusal := _refusal(request)) is not None:
        return refusal
    sid = request.match_info["sid"]
    if not valid_session_id(sid):
        return _problem(400, "bad_request", "session id must be a URL-safe token (16-128 chars)")
    try:
        body = parse_json(await request.read())
    except ApiError:
        return _problem(400, "bad_request", "the body is not JSON")
    try:
        data, expected, fence = parse_import(body)
    except BadSessionData as exc:
        return _problem(400, "bad_request", str(exc))
    store = request.app[SESSIONS]
    ok, revision = store.put(sid, data, expected, fence)
    if not ok:
        fenced = fence is not None and store.fenced(sid, fence)
        log.info("session_import_conflict", session=fingerprint(sid), expected=expected,
                 revision=revision, fenced=fenced)
        return json_response({"revision": revision, "fenced": fenced}, status=409)
    log.info("session_imported", session=fingerprint(sid), expected=expected, revision=revision,
             logged_in=data.get("uid") is not None, lines=len(data.get("basket", ())))
    return json_response({"revision": revision})


async def delete_session(request: web.Request) -> web.Response:
    if (refusal := _refusal(request)) is not None:
        return refusal
    sid = request.match_info["sid"]
    if request.app[SESSIONS].destroy(sid):
        log.info("session_deleted", session=fingerprint(sid))
    return web.Response(status=204)


def parse_import(body: Any) -> tuple[dict[str, Any], int | None, int | None]:
    """``{"data", "expected_revision", "fence"?}`` -> checked session data, the expected
    revision and the fence. Raises ``BadSessionData``."""
    if not isinstance(body, dict) or "data" not in body or "expected_revision" not in body:
        raise BadSessionData("body must be {\"data\": {...}, \"expected_revision\": int|null}")
    expected = body["expected_revision"]
    if expected is not None and (strict_int(expected) is None or expected < 0):
        raise BadSessionData("expected_revision must be a non-negative int or null")
    fence = body.get("fence")
    if fence is not None and (strict_int(fence) is None or fence < 0):
        raise BadSessionData("fence must be a non-negative int or absent")
    return check_data(body["data"]), expected, fence


def add_routes(app: web.Application) -> None:
    path = wire.INTERNAL_SESSIONS_PATH
    app.router.add_get(path, export_session, allow_head=False)
    app.router.add_put(path, import_session)
    app.router.add_delete(path, delete_session)
