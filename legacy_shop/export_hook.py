"""The session-export hook: the monolith's one concession to the migration.

docs/protocol.md section 4. Two parts:

- a middleware that tells the gateway, on every response to a request that
  carried a ``shop_session`` cookie or created a session, which session the
  request ended with and its revision (0 when it does not exist);
- ``/_internal/sessions/{sid}``: GET exports a session in the legacy export
  shape, PUT imports one (compare-and-set on the revision), DELETE drops it.
  All three require the internal token; without one configured they are off.

This is the only module of ``legacy_shop`` that imports ``adapters``: header
names from ``adapters.wire`` and the export-shape validation of
``adapters.session``, so that what this node accepts is exactly what the
bridge can translate.
"""

from __future__ import annotations

import hmac
from collections.abc import MutableMapping
from typing import Any

import structlog
from aiohttp import web

from adapters import wire
from adapters.session import SessionFormatError, from_legacy, to_legacy
from adapters.store import valid_session_id
from legacy_shop.errors import ApiError
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
        data, expected, fence = parse_import(sid, body)
    except SessionFormatError as exc:
        return _problem(400, "bad_request", str(exc))
    store = request.app[SESSIONS]
    ok, revision = store.put(sid, data, expected, fence)
    if not ok:
        fenced = fence is not None and store.fenced(sid, fence)
        log.info("session_import_conflict", session=fingerprint(sid), expected=expected,
                 revision=revision, fenced=fenced)
        return json_response({"revision": revision, "fenced": fenced}, status=409)
    log.info("session_imported", session=fingerprint(sid), expected=expected, revision=revision,
             logged_in=data["uid"] is not None, lines=len(data["basket"]))
    return json_response({"revision": revision})


async def delete_session(request: web.Request) -> web.Response:
    if (refusal := _refusal(request)) is not None:
        return refusal
    sid = request.match_info["sid"]
    if request.app[SESSIONS].destroy(sid):
        log.info("session_deleted", session=fingerprint(sid))
    return web.Response(status=204)


def parse_import(sid: str, body: Any) -> tuple[dict[str, Any], int | None, int | None]:
    """``{"data", "expected_revision", "fence"?}`` -> normalised session data, the expected
    revision and the fence.

    Stricter than ``adapters.session.from_legacy`` where JSON allows a bool for
    an int; otherwise exactly what it accepts. Raises ``SessionFormatError``.
    """
    if not isinstance(body, dict) or "data" not in body or "expected_revision" not in body:
        raise SessionFormatError("body must be {\"data\": {...}, \"expected_revision\": int|null}")
    expected = body["expected_revision"]
    if expected is not None and (strict_int(expected) is None or expected < 0):
        raise SessionFormatError("expected_revision must be a non-negative int or null")
    fence = body.get("fence")
    if fence is not None and (strict_int(fence) is None or fence < 0):
        raise SessionFormatError("fence must be a non-negative int or absent")
    data = body["data"]
    if not isinstance(data, dict):
        raise SessionFormatError("data must be an object")
    _reject_bools(data)
    exported = from_legacy({"session_id": sid, "revision": 0, "data": data})
    normalised = to_legacy(exported.session)
    return normalised, expected, fence


def _reject_bools(data: dict[str, Any]) -> None:
    if isinstance(data.get("uid"), bool):
        raise SessionFormatError("data.uid must be an int or null")
    if data.get("uid") is not None and not isinstance(data.get("uname"), str):
        raise SessionFormatError("data.uname must be a string when data.uid is set")
    basket = data.get("basket", [])
    for i, line in enumerate(basket if isinstance(basket, list) else []):
        if isinstance(line, dict) and any(isinstance(line.get(k), bool)
                                          for k in ("sku", "quantity")):
            raise SessionFormatError(f"data.basket[{i}]: sku and quantity must be ints")


def add_routes(app: web.Application) -> None:
    path = wire.INTERNAL_SESSIONS_PATH
    app.router.add_get(path, export_session, allow_head=False)
    app.router.add_put(path, import_session)
    app.router.add_delete(path, delete_session)
