"""Shadow stage: copy safe requests to new, compare, never make the user wait.

The user is answered by legacy. ``submit`` runs after legacy has answered and
only *starts* a background task -- the pipeline relays legacy's response at
once, whatever new does. Only GET and HEAD are copied (never a method that
may change state), only when legacy's body was read whole (a streamed body is
skipped and counted) and the request body can be sent again.

Each copy carries ``X-Strangler-Shadow`` (new services refuse to change state
on it) and the session's identity JWT, like a real new-routed request. For a
share of copies (``noise_sample_rate``) legacy is asked the same question a
second time, through the session bridge like any legacy request: what differs
between two legacy answers is noise (Diffy's method) and is filtered from the
legacy-vs-new comparison of that request, and learned for the route once it
has differed ``noise_threshold`` times.

Copies are bounded by ``gateway.shadow_concurrency`` requests in flight (the
second legacy call takes a slot of its own): when no slot is free the copy is
skipped and counted, never queued.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from adapters.wire import IDENTITY_HEADER, SHADOW_HEADER
from gateway.errors import GatewayError, UpstreamError
from gateway.observe import log
from gateway.observe.metrics import Metrics
from gateway.session import budget as session_budget
from gateway.session.bridge import SessionUnbridgeable
from gateway.session.port import StoreUnavailable
from gateway.settings import RouteSection, ShadowSection
from gateway.shadow import compare
from gateway.shadow.compare import Answer, Rules
from gateway.shadow.stats import DiffEntry, RouteStats
from gateway.upstream.forward import UpstreamResult
from gateway.upstream.pools import NewPool

if TYPE_CHECKING:
    from gateway.pipeline.exchange import Exchange
    from gateway.session.bridge import SessionBridge

_log = log.get("shadow")
_SAFE = frozenset({"GET", "HEAD"})
MAX_SHADOW_BODY = 1024 * 1024
"""A streamed answer from a shadow call is read up to this size for comparison."""


class _Failed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(slots=True)
class Lane:
    """One route's shadow rules and statistics."""

    config: ShadowSection
    rules: Rules
    stats: RouteStats


class _Slots:
    """A non-blocking semaphore: take a slot now or not at all."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0

    def take(self) -> bool:
        if self.used >= self.size:
            return False
        self.used += 1
        return True

    def give(self) -> None:
        self.used -= 1


class Shadower:
    def __init__(self, new: NewPool, bridge: SessionBridge, metrics: Metrics,
                 concurrency: int, routes: Iterable[RouteSection] = (), *,
                 rng: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.time) -> None:
        self._new = new
        self._bridge = bridge
        self._metrics = metrics
        self._slots = _Slots(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._rng = rng
        self._clock = clock
        self._internal = bridge.profile.response_headers
        self.lanes = {r.name: _lane(r.name, r.shadow, self._internal) for r in routes
                      if not r.legacy_only}

    def configure(self, routes: Iterable[RouteSection]) -> None:
        """Reloaded rules: a route whose shadow section is unchanged keeps its statistics."""
        lanes = {}
        for r in routes:
            if r.legacy_only:
                continue
            lane = self.lanes.get(r.name)
            lanes[r.name] = lane if lane is not None and lane.config == r.shadow else \
                _lane(r.name, r.shadow, self._internal)
        self.lanes = lanes

    def lane(self, route: str) -> Lane:
        found = self.lanes.get(route)
        if found is None:  # a route the config did not describe: default rules
            found = self.lanes[route] = _lane(route, ShadowSection(), self._internal)
        return found

    # ------------------------------------------------------------ hot path
    def submit(self, ex: Exchange, legacy: UpstreamResult) -> None:
        """Start comparing ``ex`` with new in the background; never waits for anything."""
        if ex.request.method not in _SAFE:
            return
        route = ex.route.name
        lane = self.lane(route)
        rate = lane.config.sample_rate
        if rate < 1.0 and self._rng() >= rate:
            lane.stats.unsampled += 1
            return
        if legacy.body is None or not ex.resendable:
            self._skip(lane, "streamed")
            return
        if not self._slots.take():
            self._skip(lane, "busy")
            return
        twice = lane.config.learn_noise and self._rng() < lane.config.noise_sample_rate
        if twice and not self._slots.take():
            twice = False
            lane.stats.noise_missed("busy")
            self._metrics.shadow_noise.labels(route, "skipped").inc()
        task = session_budget.spawn(self._run(ex, legacy, lane, twice))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            _log.error("shadow_crashed", error=type(exc).__name__, detail=str(exc)[:200])

    def _skip(self, lane: Lane, reason: str) -> None:
        lane.stats.skip(reason)
        self._metrics.shadow.labels(lane.stats.route, "skipped").inc()
        self._metrics.shadow_skipped.labels(lane.stats.route, reason).inc()

    # ------------------------------------------------------------ background
    async def _run(self, ex: Exchange, legacy: UpstreamResult, lane: Lane, twice: bool) -> None:
        first = Answer(legacy.status, legacy.headers, legacy.body or b"")
        if twice:
            new, again = await asyncio.gather(self._to_new(ex), self._to_legacy(ex, legacy),
                                              return_exceptions=True)
        else:
            new, again = (await asyncio.gather(self._to_new(ex), return_exceptions=True))[0], None
        noise = self._learn(lane, first, again) if twice else frozenset()
        self._compare(ex, lane, first, new, noise)

    async def _to_new(self, ex: Exchange) -> Answer:
        try:
            token, _ = await self._bridge.token_for_new(ex.sid, ex.hint, ex.rid, ex.sync,
                                                        ex.route.audience, ex.route.guests)
            member = self._new.pick()
            if member is None:
                raise _Failed("no_new_instance", "no healthy new instance")
            extra = {SHADOW_HEADER: "1"}
            if token:
                extra[IDENTITY_HEADER] = token
            result = await member.upstream.send(ex.outgoing(extra))
            return Answer(result.status, result.headers, await _whole(result))
        except SessionUnbridgeable:
            raise _Failed("session_unbridgeable", "the session does not fit the profile") \
                from None
        except GatewayError as exc:
            raise _Failed(_error_kind(exc), exc.detail) from exc
        finally:
            self._slots.give()

    async def _to_legacy(self, ex: Exchange, legacy: UpstreamResult) -> Answer | None:
        """The same request to legacy again (same node when it is still healthy)."""
        try:
            plan = await self._bridge.before_legacy(ex.sid, legacy.upstream_id, ex.rid)
            result = await plan.member.upstream.send(ex.outgoing({SHADOW_HEADER: "1"}))
            body = await _whole(result)
            after = await self._bridge.after_legacy(plan, result.status, ex.request.method,
                                                    result.headers, ex.rid)
            if after.retry:
                return None  # the node had lost the session: not a fair second answer
            return Answer(result.status, result.headers, body)
        except GatewayError as exc:
            raise _Failed(_error_kind(exc), exc.detail) from exc
        finally:
            self._slots.give()

    def _learn(self, lane: Lane, first: Answer, again: Answer | BaseException | None
               ) -> frozenset[str]:
        """Compare legacy with itself; return the shapes that differed this time."""
        route = lane.stats.route
        if isinstance(again, BaseException) or again is None or again.status != first.status:
            # A failed or refilled call, or a flaky status, teaches nothing about the body.
            result = "error" if isinstance(again, BaseException) else "unusable"
            lane.stats.noise_missed(_reason(again))
            self._metrics.shadow_noise.labels(route, result).inc()
            return frozenset()
        shapes = compare.diff(first, again, lane.rules).shapes
        grew = lane.stats.noise_sample(shapes)
        self._metrics.shadow_noise.labels(route, "differed" if shapes else "same").inc()
        if grew:
            self._metrics.shadow_noise_paths.labels(route).set(len(lane.stats.noise))
            _log.info("shadow_noise_learned", route=route, paths=sorted(lane.stats.noise))
            self._publish_rate(lane)
        return shapes

    def _compare(self, ex: Exchange, lane: Lane, first: Answer,
                 new: Answer | BaseException, noise: frozenset[str]) -> None:
        stats, route = lane.stats, lane.stats.route
        now = self._clock()
        if isinstance(new, BaseException):
            reason = _reason(new)
            stats.error(reason, now)
            self._metrics.shadow.labels(route, "error").inc()
            _log.info("shadow_failed", route=route, reason=reason, detail=str(new)[:200])
            return
        result = compare.diff(first, new, lane.rules, stats.noise | noise)
        entry = DiffEntry(now, ex.request.method, ex.target.path, ex.rid, first.status,
                          new.status, result.differences)
        extra = 1 if result.truncated else 0
        same = stats.comparison(entry, len(result.differences) + extra, now)
        self._metrics.shadow.labels(route, "match" if same else "mismatch").inc()
        self._publish_rate(lane)
        if not same:
            _log.info("shadow_mismatch", route=route, path=ex.target.path,
                      legacy_status=first.status, new_status=new.status,
                      differences=[d.path for d in result.differences[:5]],
                      count=len(result.differences))

    def _publish_rate(self, lane: Lane) -> None:
        rate = lane.stats.consistency_rate
        if rate is not None:
            self._metrics.shadow_consistency.labels(lane.stats.route).set(rate)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _lane(name: str, cfg: ShadowSection, internal: tuple[str, ...] = ()) -> Lane:
    """``internal``: the monolith's own session headers, never a difference."""
    rules = Rules.build(compare_headers=cfg.compare_headers,
                        ignore_headers=(*cfg.ignore_headers, *internal),
                        ignore_paths=cfg.ignore_paths)
    return Lane(cfg, rules, RouteStats(name, cfg.noise_threshold, cfg.diff_log_size))


def _error_kind(exc: GatewayError) -> str:
    if isinstance(exc, UpstreamError):
        return exc.kind
    if isinstance(exc, StoreUnavailable):
        return "session_store_down"
    return exc.code


def _reason(outcome: object) -> str:
    if isinstance(outcome, _Failed):
        return outcome.reason
    if outcome is None:
        return "session_refilled"
    if isinstance(outcome, Answer):
        return "status_differs"
    return type(outcome).__name__


async def _whole(result: UpstreamResult) -> bytes:
    """The body of a shadow call, read whole up to ``MAX_SHADOW_BODY``."""
    body = await result.whole(MAX_SHADOW_BODY)
    if len(body) > MAX_SHADOW_BODY:
        raise _Failed("body_too_large", f"answer larger than {MAX_SHADOW_BODY} bytes")
    return body
