"""A session-export hook with one flaw chosen by the test, to prove `hook check` sees it.

``hook_app(None, token)`` keeps docs/protocol.md section 4 to the letter (in
memory, like the shop and notes); ``hook_app(Flaw.X, token)`` breaks exactly
one promise, the way real hooks get it wrong. It imports nothing of
Strangler's: a monolith would not.
"""

from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

PATH = "/_internal/sessions/{sid}"
LIMIT = 256 * 1024
RACE_YIELDS = 50
"""How long TWO_WINNERS holds its window open: loop turns, not seconds."""


class Flaw(enum.Enum):
    NO_TOKEN = "takes calls without a token"
    ANY_TOKEN = "takes any token, as long as there is one"
    FOUND_UNKNOWN = "answers an unknown id with an empty session (200)"
    CREATE_AT_ZERO = "starts a created session at revision 0"
    NO_NODE = "exports without the node id"
    SAME_DATA_SAME_REVISION = "keeps the revision when an import changes nothing"
    STALE_SAYS_EXPECTED = "answers a stale import's 409 with the revision it was sent"
    NO_COMPARE_AND_SET = "ignores expected_revision"
    BIG_INTS_AS_FLOATS = "keeps numbers as doubles (as JavaScript does)"
    DROPS_NULLS = "drops keys whose value is null"
    TWO_WINNERS = "checks the revision, awaits, then writes"
    IGNORES_FENCES = "ignores fences"
    OVERSIZE_500 = "fails with 500 on a body over its limit"
    OVERSIZE_HANGS = "never answers a body over its limit"
    NOT_JSON_500 = "fails with 500 on a body that is not JSON"
    DELETE_KEEPS = "answers DELETE with 204 and keeps the session"


@dataclass(slots=True)
class _Session:
    revision: int
    data: dict[str, Any]
    imported: tuple[int, int] | None = None


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


class _Hook:
    def __init__(self, flaw: Flaw | None, token: str, node: str) -> None:
        self.flaw, self.token, self.node = flaw, token, node
        self.sessions: dict[str, _Session] = {}
        self.fences: dict[str, int] = {}
        self.released = asyncio.Event()
        """Set when the app shuts down: a hanging request ends then, not never."""
        self.hanging = asyncio.Event()
        """Set when OVERSIZE_HANGS starts not answering."""

    def refused(self, request: web.Request) -> web.Response | None:
        given = request.headers.get("X-Internal-Token")
        if self.flaw is Flaw.NO_TOKEN or (self.flaw is Flaw.ANY_TOKEN and given):
            return None
        return None if given == self.token else _json({"error": "forbidden"}, 403)

    async def export(self, request: web.Request) -> web.Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        sid, raw = request.match_info["sid"], request.headers.get("X-Strangler-Fence")
        if raw is not None and self.flaw is not Flaw.IGNORES_FENCES:
            if not (raw.isascii() and raw.isdigit()):
                return _json({"error": "bad_fence"}, 400)
            self.fences[sid] = max(int(raw), self.fences.get(sid, -1))
        session = self.sessions.get(sid)
        if session is None and self.flaw is Flaw.FOUND_UNKNOWN:
            session = _Session(0, {})
        if session is None:
            return _json({"error": "not_found"}, 404)
        body: dict[str, Any] = {"session_id": sid, "revision": session.revision,
                                "node": self.node, "data": session.data}
        if self.flaw is Flaw.NO_NODE:
            del body["node"]
        if session.imported is not None:
            body["imported"] = {"fence": session.imported[0], "revision": session.imported[1]}
        return _json(body)

    async def import_(self, request: web.Request) -> web.Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        sid = request.match_info["sid"]
        parsed = await self.body(request)
        if isinstance(parsed, web.Response):
            return parsed
        data, expected, fence = parsed
        session = self.sessions.get(sid)
        current = session.revision if session else 0
        if fence is not None and self.flaw is not Flaw.IGNORES_FENCES:
            if fence < self.fences.get(sid, -1):
                return _json({"revision": current, "fenced": True}, 409)
            self.fences[sid] = fence
        if expected is not None and expected != current \
                and self.flaw is not Flaw.NO_COMPARE_AND_SET:
            said = expected if self.flaw is Flaw.STALE_SAYS_EXPECTED else current
            return _json({"revision": said, "fenced": False}, 409)
        if self.flaw is Flaw.TWO_WINNERS:
            for _ in range(RACE_YIELDS):  # the window another writer slips through
                await asyncio.sleep(0)
        revision = current + 1
        if session is None and self.flaw is Flaw.CREATE_AT_ZERO:
            revision = 0
        if session and session.data == data and self.flaw is Flaw.SAME_DATA_SAME_REVISION:
            revision = current
        keep = None if fence is None or self.flaw is Flaw.IGNORES_FENCES else (fence, revision)
        self.sessions[sid] = _Session(revision, self.stored(data), keep)
        return _json({"revision": revision})

    async def body(self, request: web.Request
                   ) -> tuple[dict[str, Any], int | None, int | None] | web.Response:
        if (request.content_length or 0) > LIMIT:
            if self.flaw is Flaw.OVERSIZE_HANGS:
                self.hanging.set()
                await self.released.wait()
            if self.flaw is Flaw.OVERSIZE_500:
                raise RuntimeError("body too large")  # aiohttp answers 500
            return _json({"error": "body_too_large"}, 413)
        try:
            body = json.loads(await request.read())
        except ValueError:
            if self.flaw is Flaw.NOT_JSON_500:
                raise
            return _json({"error": "malformed_json"}, 400)
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict) \
                or "expected_revision" not in body:
            return _json({"error": "bad_import"}, 400)
        expected, fence = body["expected_revision"], body.get("fence")
        if not all(v is None or type(v) is int for v in (expected, fence)):
            return _json({"error": "bad_import"}, 400)
        return body["data"], expected, fence

    def stored(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.flaw is Flaw.BIG_INTS_AS_FLOATS:
            return json.loads(json.dumps(data),  # type: ignore[no-any-return]
                              parse_int=lambda s: int(s) if abs(int(s)) < 2**53 else float(s))
        if self.flaw is Flaw.DROPS_NULLS:
            return {k: v for k, v in data.items() if v is not None}
        return data

    async def delete(self, request: web.Request) -> web.Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        if self.flaw is not Flaw.DELETE_KEEPS:
            self.sessions.pop(request.match_info["sid"], None)
        return web.Response(status=204)


HOOK = web.AppKey("hook", _Hook)


def hook_app(flaw: Flaw | None, token: str, node: str = "x1") -> web.Application:
    """A node that is nothing but its hook; ``app[HOOK].sessions`` is its memory."""
    hook = _Hook(flaw, token, node)
    app = web.Application(client_max_size=16 * 1024 * 1024)  # the limit is the hook's own
    app[HOOK] = hook

    async def release(_: web.Application) -> None:
        hook.released.set()

    app.on_shutdown.append(release)
    app.router.add_get(PATH, hook.export, allow_head=False)
    app.router.add_put(PATH, hook.import_)
    app.router.add_delete(PATH, hook.delete)
    return app
