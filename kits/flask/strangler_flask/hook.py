"""``/_internal/sessions/<sid>``: the export hook, exactly as docs/protocol.md section 4 has it.

- ``GET``: 200 ``{"session_id", "revision", "node", "data", "imported"?}``, 404
  when unknown. ``X-Strangler-Fence: F`` (a non-negative integer, else 400) is
  noted first as the highest fence seen for the id if higher -- also when
  there is no such session.
- ``PUT`` ``{"data": {...}, "expected_revision": int | null, "fence": int?}``:
  200 ``{"revision": new}``; 409 ``{"revision": current, "fenced": true}`` for a
  fence lower than one seen, 409 ``{..., "fenced": false}`` when the revision is
  not the expected one (0 when unknown). ``data`` replaces the session; the id
  stays. Over ``STRANGLER_MAX_IMPORT_BYTES``: 413; not JSON: 400.
- ``DELETE``: 204, known or not. Fences are kept.

Every call needs ``X-Internal-Token`` (compared with ``hmac.compare_digest``):
403 without the right one, 503 when the node has none. The id in the path is
percent-decoded by the server; one that no cookie could carry is unknown (404)
and cannot be imported (400). Answers are JSON only.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any, Final

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException
from werkzeug.wsgi import get_input_stream

from . import jsonio
from .errors import HookError
from .ids import valid_sid
from .settings import Settings
from .store import NodeSessions

PATH: Final = "/_internal/sessions/<strangler_sid:sid>"
TOKEN_HEADER: Final = "X-Internal-Token"  # noqa: S105 (a header name)
FENCE_HEADER: Final = "X-Strangler-Fence"
MAX_COUNT: Final = 2**63 - 1
DRAIN_BYTES: Final = 16 * 1024 * 1024
"""How much of an oversize body is read (and dropped) before the 413 is sent."""
EXTENSION: Final = "strangler"

log = logging.getLogger(__name__)


def blueprint() -> Blueprint:
    bp = Blueprint("strangler_hook", __name__)
    bp.add_url_rule(PATH, view_func=export_session, methods=["GET"], merge_slashes=False)
    bp.add_url_rule(PATH, view_func=import_session, methods=["PUT"], merge_slashes=False)
    bp.add_url_rule(PATH, view_func=delete_session, methods=["DELETE"], merge_slashes=False)
    bp.register_error_handler(HookError, _refused)
    bp.register_error_handler(HTTPException, _http_error)
    return bp


def _kit() -> tuple[Settings, NodeSessions]:
    state = current_app.extensions[EXTENSION]
    return state.settings, state.sessions


def export_session(sid: str) -> Response:
    settings, sessions = _kit()
    _authorise(settings)
    fence = _fence_header()
    if not valid_sid(sid):
        raise HookError(404, "not_found", "no such session")
    found = sessions.export(sid, fence)
    if found is None:
        raise HookError(404, "not_found", "no such session")
    data, meta = found
    body: dict[str, Any] = {"session_id": sid, "revision": meta.revision,
                            "node": settings.node_id, "data": data}
    if meta.imported is not None:
        body["imported"] = {"fence": meta.imported[0], "revision": meta.imported[1]}
    try:
        return _json(body)
    except jsonio.NotJson as exc:
        raise HookError(422, "not_json", f"the session holds what JSON cannot carry: "
                        f"{exc}") from exc


def import_session(sid: str) -> Response:
    settings, sessions = _kit()
    _authorise(settings)
    if not valid_sid(sid):
        raise HookError(400, "bad_session_id", "not an id a cookie could carry")
    raw = _read_body(settings.max_import_bytes)
    try:
        parsed = jsonio.parse(raw)
    except jsonio.BadJson as exc:
        raise HookError(400, "malformed_json", str(exc)) from exc
    data, expected, fence = parse_import(parsed)
    outcome = sessions.import_session(sid, data, expected, fence)
    if not outcome.ok:
        return _json({"revision": outcome.revision, "fenced": outcome.fenced}, 409)
    return _json({"revision": outcome.revision})


def delete_session(sid: str) -> Response:
    settings, sessions = _kit()
    _authorise(settings)
    if valid_sid(sid):
        sessions.delete(sid)
    return Response(status=204)


def parse_import(body: Any) -> tuple[dict[str, Any], int | None, int | None]:
    """``{"data", "expected_revision", "fence"?}`` -> its three parts, or 400 ``bad_import``."""
    if not isinstance(body, dict) or "data" not in body or "expected_revision" not in body:
        raise HookError(400, "bad_import",
                        'body must be {"data": {...}, "expected_revision": int|null}')
    if not isinstance(body["data"], dict):
        raise HookError(400, "bad_import", "data must be an object")
    expected, fence = body["expected_revision"], body.get("fence")
    if expected is not None and not _count(expected):
        raise HookError(400, "bad_import", "expected_revision must be an int >= 0 or null")
    if fence is not None and not _count(fence):
        raise HookError(400, "bad_import", "fence must be an int >= 0 or absent")
    return body["data"], expected, fence


def _authorise(settings: Settings) -> None:
    if settings.token is None:
        raise HookError(503, "hook_off", "no internal token is configured on this node")
    given = request.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                               settings.token.encode("utf-8")):
        log.warning("internal_auth_failed method=%s", request.method)
        raise HookError(403, "forbidden", f"{TOKEN_HEADER} missing or wrong")


def _fence_header() -> int | None:
    raw = request.headers.get(FENCE_HEADER)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_COUNT):
        raise HookError(400, "bad_fence", f"{FENCE_HEADER} must be a non-negative integer")
    return int(raw)


def _read_body(limit: int) -> bytes:
    """The whole body, or 413 past ``limit`` bytes (declared or sent).

    Read from the WSGI input itself, so the kit's limit governs the hook whatever
    the app's ``MAX_CONTENT_LENGTH``. A body over the limit is still read to its
    end (up to ``DRAIN_BYTES``) before the 413 goes out: a server that answers
    and closes while the client is still sending makes the client see a broken
    pipe instead of the answer.
    """
    stream = get_input_stream(request.environ, max_content_length=None)
    chunks, size = [], 0
    declared = request.content_length
    over = declared is not None and declared > limit
    while not over and (chunk := stream.read(64 * 1024)):
        size += len(chunk)
        over = size > limit
        chunks.append(chunk)
    if over:
        drained = size
        while drained < DRAIN_BYTES and (chunk := stream.read(64 * 1024)):
            drained += len(chunk)
        raise HookError(413, "body_too_large", f"an import may be {limit} bytes at most",
                        limit=limit)
    return b"".join(chunks)


def _count(value: Any) -> bool:
    """A JSON integer (not a bool, not a float) in 0..2**63-1."""
    return type(value) is int and 0 <= value <= MAX_COUNT


def _json(value: Any, status: int = 200) -> Response:
    return Response(jsonio.dumps(value), status=status, mimetype="application/json")


def _refused(exc: HookError) -> Response:
    return _json(exc.body(), exc.status)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    return _json({"error": (exc.name or "error").lower().replace(" ", "_"),
                  "detail": exc.description or ""}, status)
