"""The internal endpoints, exactly as docs/protocol.md section 4 specifies them.

- ``GET {sid}``: 200 ``{"session_id", "revision", "node", "data", "imported"?}``,
  404 when unknown. ``X-Strangler-Fence: F`` (a non-negative integer, else 400)
  is noted first as the highest fence seen for the id -- also when unknown.
- ``PUT {sid}`` ``{"data": {...}, "expected_revision": int | null, "fence": int?}``:
  200 ``{"revision": new}``; 409 ``{"revision": current, "fenced": bool}``.
- ``DELETE {sid}``: 204, known or not.

All need ``X-Internal-Token`` (constant-time compare): 403 without the right
one, 503 when the node has none configured (or, with ``Retry-After``, when the
session's lock stays taken past ``locks.WAIT_S``). Bodies over ``MAX_IMPORT_BYTES``
are 413, bodies that are not JSON 400. Every answer is JSON (204 has none).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from strangler_django import conf, locks, sessions
from strangler_django.bodies import (
    BodyError,
    dumps,
    error_response,
    json_response,
    parse_json,
    read_body,
)

TOKEN_HEADER = "X-Internal-Token"  # noqa: S105 (a header name, not a secret)
FENCE_HEADER = "X-Strangler-Fence"
MAX_COUNT = 2**63 - 1

log = logging.getLogger("strangler_django")


@csrf_exempt  # type: ignore[untyped-decorator]  # Django ships no type stubs
def session(request: HttpRequest, sid: str) -> HttpResponse:
    """One session id (Django has percent-decoded it): GET, PUT or DELETE."""
    settings = conf.get()
    if settings.token is None:
        return error_response(503, "internal_disabled",
                              "no internal token configured on this node: the hook is off")
    given = request.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                               settings.token.encode("utf-8")):
        log.warning("strangler_internal_auth_failed method=%s", request.method)
        return error_response(403, "forbidden", f"a valid {TOKEN_HEADER} is required")
    try:
        if request.method == "GET":
            return _export(request, sid, settings.node_id)
        if request.method == "PUT":
            return _import(request, sid, settings.max_import_bytes)
        if request.method == "DELETE":
            if sessions.valid_id(sid):
                sessions.delete(sid)
            return HttpResponse(status=204)
    except BodyError as exc:
        return error_response(exc.status, exc.code, exc.detail)
    except locks.Busy:
        busy = error_response(503, "session_busy", "the session is locked; retry shortly")
        busy["Retry-After"] = "1"
        return busy
    response = error_response(405, "method_not_allowed", "GET, PUT or DELETE")
    response["Allow"] = "GET, PUT, DELETE"
    return response


def _export(request: HttpRequest, sid: str, node_id: str) -> HttpResponse:
    fence = _fence_header(request.headers.get(FENCE_HEADER))
    found = sessions.export(sid, fence) if sessions.valid_id(sid) else None
    if found is None:
        return error_response(404, "not_found", "this node holds no such session")
    body: dict[str, Any] = {"session_id": sid, "revision": found.revision,
                            "node": node_id, "data": found.data}
    if found.imported is not None:
        body["imported"] = {"fence": found.imported[0], "revision": found.imported[1]}
    try:
        text = dumps(body)
    except (TypeError, ValueError) as exc:
        log.warning("strangler_export_not_json sid_len=%d: %s", len(sid), exc)
        return error_response(422, "session_not_json",
                              f"the session holds a value JSON cannot carry: {exc}")
    return HttpResponse(text, content_type="application/json")


def _import(request: HttpRequest, sid: str, limit: int) -> HttpResponse:
    if not sessions.valid_id(sid):
        raise BodyError(400, "bad_session_id", "a session id is 8 to 40 of [a-z0-9]")
    data, expected, fence = parse_import(parse_json(read_body(request, limit)))
    try:
        outcome = sessions.import_(sid, data, expected, fence)
    except sessions.BadSessionData as exc:
        raise BodyError(400, "bad_import", str(exc)) from None
    if not outcome.ok:
        return json_response({"revision": outcome.revision, "fenced": outcome.fenced}, 409)
    return json_response({"revision": outcome.revision})


def parse_import(body: Any) -> tuple[dict[str, Any], int | None, int | None]:
    """``{"data", "expected_revision", "fence"?}`` -> its three parts, or ``BodyError`` 400."""
    if not isinstance(body, dict) or "data" not in body or "expected_revision" not in body:
        raise BodyError(400, "bad_import",
                        'body must be {"data": {...}, "expected_revision": int|null}')
    if not isinstance(body["data"], dict):
        raise BodyError(400, "bad_import", "data must be an object")
    expected, fence = body["expected_revision"], body.get("fence")
    if expected is not None and not _count(expected):
        raise BodyError(400, "bad_import", "expected_revision must be an int >= 0 or null")
    if fence is not None and not _count(fence):
        raise BodyError(400, "bad_import", "fence must be an int >= 0 or absent")
    return body["data"], expected, fence


def _fence_header(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_COUNT):
        raise BodyError(400, "bad_fence", f"{FENCE_HEADER} must be a non-negative integer")
    return int(raw)


def _count(value: Any) -> bool:
    """A JSON integer (not a bool, not a float) in 0..2**63-1."""
    return type(value) is int and 0 <= value <= MAX_COUNT
