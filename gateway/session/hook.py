"""Client for the monolith's session-export hook (docs/protocol.md section 4).

The envelope (session id, revision, node, the fenced import it holds) is the
protocol's and is checked here; what is inside ``data`` is the monolith's own
and is the session profile's business: a ``data`` that does not fit raises
``SessionUnfit``, which leaves that one session to legacy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from multidict import CIMultiDict

from adapters.document import Document, SessionFormatError, loads
from adapters.profile import SessionProfile, SessionUnfit
from adapters.wire import FENCE_HEADER, INTERNAL_SESSIONS_PATH, INTERNAL_TOKEN_HEADER
from gateway.errors import UpstreamProtocolError
from gateway.upstream.forward import Outgoing, Upstream


@dataclass(frozen=True, slots=True)
class ImportResult:
    ok: bool
    revision: int
    """The node's revision now (after the import, or the conflicting one)."""
    fenced: bool = False
    """Refused because a newer fence has touched the session on the node."""


@dataclass(frozen=True, slots=True)
class Exported:
    revision: int
    doc: Document
    imported: tuple[int, int] | None
    """(fence, revision) of the last fenced import the node took."""


ExportObserver = Callable[[str, Any, int], None]
"""Told of each export read: session id, the monolith's ``data`` (read-only), body bytes."""


class LegacyHook:
    def __init__(self, token: str, profile: SessionProfile,
                 observer: ExportObserver | None = None) -> None:
        self._token = token
        self._profile = profile
        self._observer = observer
        """The session sampler (``gateway.session.sampler``): it sees the export as the
        monolith wrote it, also when the profile then finds it unfit."""

    def _headers(self, rid: str) -> CIMultiDict[str]:
        return CIMultiDict({INTERNAL_TOKEN_HEADER: self._token, "X-Request-Id": rid,
                            "Content-Type": "application/json"})

    async def export(self, node: Upstream, sid: str, rid: str,
                     fence: int | None = None) -> Exported | None:
        """The node's copy; with ``fence``, no import with a lower fence lands after it."""
        path = _path(sid)
        headers = self._headers(rid)
        if fence is not None:
            headers[FENCE_HEADER] = str(fence)
        result = await node.send(Outgoing("GET", path, headers))
        limit = self._profile.max_export_bytes
        body = await result.whole(limit)  # a chunked export may still be arriving
        if result.status == 404:
            return None
        if result.status == 422:  # docs/protocol.md: the session holds what JSON cannot carry
            raise SessionUnfit("not_json", f"{node.id}: the hook says the session holds values "
                                           "JSON cannot carry (422)")
        size = len(body)
        if result.status == 200 and size > limit:
            raise SessionUnfit("oversize", f"the export is more than {limit} bytes "
                                           "(session.max_export_bytes)")
        answer = self._json(node.id, result.status, body)
        revision, data = answer.get("revision"), answer.get("data")
        if type(revision) is not int or revision < 0 or "data" not in answer:
            raise UpstreamProtocolError(f"{node.id}: session export without revision or data")
        if self._observer is not None:
            self._observer(sid, data, size)
        doc = self._profile.from_export(data)
        return Exported(revision, doc, _imported(node.id, answer.get("imported")))

    async def import_(self, node: Upstream, sid: str, doc: Document,
                      expected_revision: int | None, rid: str,
                      fence: int | None = None) -> ImportResult:
        path = _path(sid)
        payload: dict[str, object] = {"data": self._profile.to_import(doc),
                                      "expected_revision": expected_revision}
        if fence is not None:
            payload["fence"] = fence
        result = await node.send(Outgoing("PUT", path, self._headers(rid),
                                          json.dumps(payload).encode()))
        answered = await result.whole(_MAX_ANSWER)
        if result.status not in (200, 409):
            raise UpstreamProtocolError(f"{node.id}: session import answered {result.status}")
        body = self._json(node.id, result.status, answered)
        revision = body.get("revision")
        if not isinstance(revision, int):
            raise UpstreamProtocolError(f"{node.id}: session import without revision")
        return ImportResult(result.status == 200, revision, body.get("fenced") is True)

    async def drop(self, node: Upstream, sid: str, rid: str) -> None:
        path = _path(sid)
        result = await node.send(Outgoing("DELETE", path, self._headers(rid)))
        await result.whole(_MAX_ANSWER)  # frees the connection, whatever the node said

    @staticmethod
    def _json(node_id: str, status: int, body: bytes | None) -> dict[str, object]:
        try:
            obj = loads(body or b"", "the export")
        except SessionFormatError:
            if status == 200:
                raise SessionUnfit("not_json", f"{node_id}: the session export is not JSON "
                                               "(the hook must export JSON)") from None
            obj = None
        if not isinstance(obj, dict):
            raise UpstreamProtocolError(f"{node_id}: session hook answered {status} without JSON")
        if status not in (200, 409):
            raise UpstreamProtocolError(f"{node_id}: session hook answered {status}")
        return obj


_MAX_ANSWER = 64 * 1024
"""An import's or a delete's answer is a revision or nothing; more is not read."""


def _path(sid: str) -> str:
    """The hook's path for ``sid``, percent-encoded: a cookie value may hold ``/``, ``%``,
    ``?`` or ``#`` (Java, PHP and URL-encoded ids do), and must stay one path segment."""
    return INTERNAL_SESSIONS_PATH.format(sid=quote(sid, safe=""))


def _imported(node_id: str, value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        fence, revision = value.get("fence"), value.get("revision")
        if type(fence) is int and type(revision) is int:
            return fence, revision
    raise UpstreamProtocolError(f"{node_id}: bad 'imported' in a session export")
