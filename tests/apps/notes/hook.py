"""The session-export hook, exactly as docs/protocol.md section 4 specifies it.

- ``GET /_internal/sessions/{sid}``: 200 ``{"session_id", "revision", "node",
  "data", "imported"?}``, 404 when unknown. ``X-Strangler-Fence: F`` (a
  non-negative integer, else 400) is noted first as the highest fence seen for
  the id when it is higher -- also when there is no such session.
- ``PUT`` with ``{"data": {...}, "expected_revision": int | null, "fence": int?}``:
  200 ``{"revision": new}``; 409 ``{"revision": current, "fenced": true}`` for a
  fence lower than one seen, 409 ``{..., "fenced": false}`` when the revision is
  not the expected one (0 when unknown). ``data`` must be a JSON object and is
  stored as given, whatever keys and types it has; the id is kept.
- ``DELETE``: 204, whether or not the session existed.

All three need ``X-Internal-Token`` (compared in constant time): 403 without
the right one, 503 when the node has none configured. Bodies over 256 KiB are
413, bodies that are not JSON 400. The header names are written out here on
purpose: this app imports nothing of the gateway's.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web

from .bodies import json_response, parse_json, read_body
from .cookies import valid_session_id
from .errors import NotesError
from .web import SESSIONS, SETTINGS

PATH = "/_internal/sessions/{sid}"
TOKEN_HEADER = "X-Internal-Token"
FENCE_HEADER = "X-Strangler-Fence"
MAX_FENCE = 2**63 - 1

log = logging.getLogger(__name__)


def _authorise(request: web.Request) -> None:
    token = request.app[SETTINGS].internal_token
    if not token:
        raise NotesError(503, "internal_disabled")
    given = request.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8")):
        log.warning("internal_auth_failed method=%s", request.method)
        raise NotesError(403, "forbidden")


def _fence_header(request: web.Request) -> int | None:
    raw = request.headers.get(FENCE_HEADER)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_FENCE):
        raise NotesError(400, "bad_fence", detail=f"{FENCE_HEADER} must be a non-negative int")
    return int(raw)


async def export_session(request: web.Request) -> web.Response:
    _authorise(request)
    sid = request.match_info["sid"]
    if not valid_session_id(sid):
        raise NotesError(404, "not_found")
    store = request.app[SESSIONS]
    fence = _fence_header(request)
    if fence is not None:
        store.note_fence(sid, fence)  # a lower one is only not noted, never refused
    session = store.get(sid)
    if session is None:
        raise NotesError(404, "not_found")
    body: dict[str, Any] = {"session_id": sid, "revision": session.revision,
                            "node": request.app[SETTINGS].node_id, "data": session.data}
    if session.imported is not None:
        body["imported"] = {"fence": session.imported[0], "revision": session.imported[1]}
    return json_response(body)


async def import_session(request: web.Request) -> web.Response:
    _authorise(request)
    sid = request.match_info["sid"]
    if not valid_session_id(sid):
        raise NotesError(400, "bad_session_id")
    data, expected, fence = parse_import(parse_json(await read_body(request)))
    outcome = request.app[SESSIONS].put(sid, data, expected, fence)
    if not outcome.ok:
        return json_response({"revision": outcome.revision, "fenced": outcome.fenced},
                             status=409)
    return json_response({"revision": outcome.revision})


async def delete_session(request: web.Request) -> web.Response:
    _authorise(request)
    request.app[SESSIONS].destroy(request.match_info["sid"])
    return web.Response(status=204)


def parse_import(body: Any) -> tuple[dict[str, Any], int | None, int | None]:
    """``{"data", "expected_revision", "fence"?}`` -> its three parts, or 400 ``bad_import``."""
    if not isinstance(body, dict) or "data" not in body or "expected_revision" not in body:
        raise NotesError(400, "bad_import",
                         detail='body must be {"data": {...}, "expected_revision": int|null}')
    if not isinstance(body["data"], dict):
        raise NotesError(400, "bad_import", detail="data must be an object")
    expected, fence = body["expected_revision"], body.get("fence")
    if expected is not None and not _count(expected):
        raise NotesError(400, "bad_import", detail="expected_revision must be an int >= 0 or null")
    if fence is not None and not _count(fence):
        raise NotesError(400, "bad_import", detail="fence must be an int >= 0 or absent")
    return body["data"], expected, fence


def _count(value: Any) -> bool:
    """A JSON integer (not a bool, not a float) in 0..2**63-1."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_FENCE


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, export_session, allow_head=False)
    app.router.add_put(PATH, import_session)
    app.router.add_delete(PATH, delete_session)
