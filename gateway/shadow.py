"""Shadow stage: copy safe requests to new, compare, never make the user wait.

The user is answered by legacy; a copy of each GET/HEAD goes to new in the
background (marked ``X-Strangler-Shadow``, so new refuses to change state),
bounded by a semaphore -- when it is full, the copy is skipped and counted,
never queued. Responses are compared by status and, for JSON, by value.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from adapters.wire import IDENTITY_HEADER, SHADOW_HEADER
from gateway import log
from gateway.errors import GatewayError
from gateway.forward import UpstreamResult
from gateway.metrics import Metrics
from gateway.upstreams import NewPool

if TYPE_CHECKING:
    from gateway.pipeline import Exchange
    from gateway.session_bridge import SessionBridge

_log = log.get("shadow")
_SAFE = frozenset({"GET", "HEAD"})


class Shadower:
    def __init__(self, new: NewPool, bridge: SessionBridge, metrics: Metrics,
                 concurrency: int) -> None:
        self._new = new
        self._bridge = bridge
        self._metrics = metrics
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, ex: Exchange, legacy: UpstreamResult) -> None:
        route = ex.route.name
        if ex.request.method not in _SAFE or legacy.body is None:
            return
        if self._slots.locked():
            self._metrics.shadow.labels(route, "skipped").inc()
            return
        task = asyncio.create_task(self._run(ex, legacy))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, ex: Exchange, legacy: UpstreamResult) -> None:
        route = ex.route.name
        async with self._slots:
            try:
                token = await self._bridge.token_for_new(ex.sid, ex.hint, ex.rid)
                member = self._new.pick()
                if member is None:
                    raise GatewayError("no healthy new instance")
                extra = {SHADOW_HEADER: "1"}
                if token:
                    extra[IDENTITY_HEADER] = token
                shadow = await member.upstream.send(ex.outgoing(extra))
                body = shadow.body
                shadow.release()
            except GatewayError as exc:
                self._metrics.shadow.labels(route, "error").inc()
                _log.info("shadow_failed", route=route, reason=exc.detail)
                return
            same = shadow.status == legacy.status and _same_body(legacy.body, body)
            self._metrics.shadow.labels(route, "match" if same else "mismatch").inc()
            if not same:
                _log.info("shadow_mismatch", route=route, path=ex.target.path,
                          legacy_status=legacy.status, new_status=shadow.status)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _same_body(a: bytes | None, b: bytes | None) -> bool:
    if a == b:
        return True
    left, right = _json(a), _json(b)
    return left is not None and left == right


def _json(raw: bytes | None) -> Any:
    try:
        return json.loads(raw or b"")
    except ValueError:
        return None
