"""Respond: the backend's answer as the client's ``Reply``.

Header hygiene toward the client (hop-by-hop and internal headers gone), the
request id, the debug backend header when asked for, and the gateway's own
cookies (affinity to the legacy node that served, a renewed sync token, a new
client id) only when they change. A body still streaming is relayed as it
arrives; if the backend breaks it midway the client's connection is cut
(``Abort``), and either way the forward stage hears how it ended.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from adapters.wire import AFFINITY_COOKIE, BACKEND_HEADER, CLIENT_COOKIE, SYNC_COOKIE
from gateway.edge.cookies import set_cookie
from gateway.edge.headers import Hygiene
from gateway.edge.http import Abort, Reply
from gateway.errors import UpstreamError
from gateway.observe import log
from gateway.pipeline.exchange import Exchange, Served

_log = log.get("gateway")


class Respond:
    def __init__(self, hygiene: Hygiene, debug_backend_header: bool) -> None:
        self._hygiene = hygiene
        self._debug = debug_backend_header

    def __call__(self, ex: Exchange, served: Served) -> Reply:
        result = served.result
        headers = self._hygiene.to_client(result.headers)
        headers["X-Request-Id"] = ex.rid
        if self._debug:
            headers[BACKEND_HEADER] = f"{served.backend.value}:{result.upstream_id}"
        if result.body is not None:
            reply = Reply(result.status, headers, result.body)
            if ex.method == "HEAD" and "Content-Length" in result.headers:
                reply.length = int(result.headers["Content-Length"])
        else:
            assert result.stream is not None
            reply = Reply(result.status, headers, stream=_relayed(ex, served),
                          length=result.stream.content_length)
        affinity = served.legacy_node if served.legacy_node != ex.hint else None
        if affinity or ex.new_sync or ex.new_cid:  # else the client holds them all already
            for line in cookie_lines(ex, affinity):
                reply.headers.add("Set-Cookie", line)
        return reply


def cookie_lines(ex: Exchange, affinity: str | None) -> list[str]:
    """The gateway's cookies for this answer (also on a refusal: after a request that may
    have changed the session on new, an old sync token must not stay trusted)."""
    secure = ex.secure
    lines = []
    if affinity:
        lines.append(set_cookie(AFFINITY_COOKIE, affinity, secure=secure))
    if ex.new_sync:
        lines.append(set_cookie(SYNC_COOKIE, ex.new_sync, secure=secure))
    if ex.new_cid:
        lines.append(set_cookie(CLIENT_COOKIE, ex.new_cid, secure=secure, max_age=30 * 86400))
    return lines


async def _relayed(ex: Exchange, served: Served) -> AsyncIterator[bytes]:
    """A body relayed as it arrives. If the client leaves, the backend's connection is
    let go (and nothing is reported: the backend did nothing wrong)."""
    result = served.result
    try:
        async for chunk in result.chunks():
            yield chunk
    except UpstreamError as exc:
        _log.error("response_aborted", route=ex.route.name, reason=exc.detail)
        if served.ended is not None:
            served.ended(exc.kind)
        raise Abort(exc.detail) from exc
    finally:
        result.release()
    if served.ended is not None:
        served.ended(None)
