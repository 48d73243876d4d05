"""The request pipeline: each stage a small unit, chained here in order.

normalize and screen -> match a route -> decide the backend -> bridge the
session -> forward -> fall back on failure -> post-process (session pull,
header hygiene, affinity cookie) -> log and count.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict

from adapters.handles import valid_cookie_id
from adapters.wire import (
    AFFINITY_COOKIE,
    BACKEND_HEADER,
    CLIENT_COOKIE,
    IDENTITY_HEADER,
    SYNC_COOKIE,
)
from gateway.edge.canonical import Target, canonical
from gateway.edge.cookies import DuplicateCookie, expire_lines, set_cookie
from gateway.edge.cookies import parse as parse_cookies
from gateway.edge.headers import Hygiene, TrustedProxies, screen
from gateway.edge.hosts import PublicHosts
from gateway.edge.http import Abort, Incoming, Reply
from gateway.errors import (
    BadRequest,
    DuplicateSessionCookie,
    ExpectationFailed,
    GatewayError,
    MethodNotAllowed,
    NotFound,
    PathBlocked,
    PayloadTooLarge,
    ServiceUnavailable,
    UpstreamConnectError,
    UpstreamError,
)
from gateway.observe import log, tracing
from gateway.observe.metrics import Metrics
from gateway.routing.breaker import Breaker
from gateway.routing.budget import RetryBudget
from gateway.routing.decide import Backend, Decider, Decision
from gateway.routing.fallback import fallback_verdict
from gateway.routing.pinning import PinBook
from gateway.routing.routes import Match, Route, Router
from gateway.session.bridge import LegacyPlan, SessionBridge, SessionUnbridgeable
from gateway.session.budget import BudgetExhausted
from gateway.session.store import StoreBusy, StoreUnavailable
from gateway.settings import GatewaySection
from gateway.shadow.stage import Shadower
from gateway.upstream.forward import Outgoing, UpstreamResult
from gateway.upstream.pools import LegacyPool, NewPool

_log = log.get("gateway")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(slots=True)
class Exchange:
    """Everything one request carries through the stages."""

    request: Incoming
    rid: str
    target: Target
    route: Route
    sid: str | None
    hint: str | None
    headers: CIMultiDict[str]
    body: bytes | AsyncIterator[bytes] | None
    length: int | None
    sync: str | None = None
    """The client's sync token; replaced when this request may change the session on new."""
    new_sync: str | None = None
    new_cid: str | None = None
    client_id: str | None = None

    @property
    def resendable(self) -> bool:
        return self.body is None or isinstance(self.body, bytes)

    def outgoing(self, extra: dict[str, str] | None = None) -> Outgoing:
        headers = self.headers
        if extra:
            headers = CIMultiDict(headers)
            headers.update(extra)
        return Outgoing(self.request.method, self.target.forward, headers, self.body,
                        self.length)


@dataclass(slots=True)
class Served:
    result: UpstreamResult
    backend: Backend
    reason: str
    legacy_node: str | None = None


class Pipeline:
    def __init__(self, cfg: GatewaySection, router: Router, decider: Decider,
                 bridge: SessionBridge, legacy: LegacyPool, new: NewPool,
                 breakers: dict[str, Breaker], budgets: dict[str, RetryBudget],
                 shadow: Shadower, metrics: Metrics, pins: PinBook | None = None) -> None:
        self.cfg = cfg
        self.router = router
        self.decider = decider
        self.bridge = bridge
        self.legacy = legacy
        self.new = new
        self.breakers = breakers
        self.budgets = budgets
        self.pins = pins
        self.shadow = shadow
        self.metrics = metrics
        self.trusted = TrustedProxies(cfg.trusted_proxies)
        self.hosts = PublicHosts(cfg.public_hosts, cfg.default_host)
        self._limits = cfg.limits
        profile = bridge.profile
        self.hygiene = Hygiene(profile.response_headers)
        self._cookie = profile.cookie
        self._duplicates = profile.duplicates

    # ------------------------------------------------------------ entry
    async def handle(self, request: Incoming, rid: str) -> Reply:
        started = time.perf_counter()
        self.bridge.begin()
        ex = await self._prepare(request, rid)
        try:
            decision = await self._decide(ex)
            if decision.backend is Backend.NEW:
                served = await self._via_new(ex, decision)
            else:
                served = await self._via_legacy(ex, decision.reason)
                if decision.shadow:
                    self.shadow.submit(ex, served.result)
        except GatewayError as exc:
            # A refusal still hands the client its new sync token: after a request that
            # may have changed the session on new, an old token must not stay trusted.
            exc.cookies = self._cookie_lines(ex, None)
            raise
        response = self._relay(ex, served)
        elapsed = time.perf_counter() - started
        self.bridge.done()
        self.metrics.observe_request(ex.route.name, served.backend.value, response.status, elapsed,
                                     served.reason)
        log.request_line(ex.rid, route=ex.route.name, backend=served.backend.value,
                         reason=served.reason, upstream=served.result.upstream_id,
                         status=response.status, ms=round(elapsed * 1000, 2),
                         trace_id=tracing.trace_id(ex.headers["traceparent"]))
        return response

    # ------------------------------------------------------------ stages
    async def _prepare(self, request: Incoming, rid: str) -> Exchange:
        host, target = self._screen(request)
        match = self.router.match(target.path, request.method)
        if match.match is not Match.FULL or match.route is None:
            if match.match is Match.PARTIAL and match.route is not None:
                allow = tuple(sorted(match.route.methods or ()))
                raise MethodNotAllowed(f"{request.method} is not allowed here", allow)
            raise NotFound(f"no route for {target.path}")
        raw_cookies = request.headers.getall("Cookie", ())
        try:
            cookies = parse_cookies(raw_cookies[0] if len(raw_cookies) == 1
                                    else "; ".join(raw_cookies), self._cookie, self._duplicates)
        except DuplicateCookie:
            raise self._duplicate(request, target.path, host) from None
        sid = cookies.get(self._cookie)
        if sid is not None and not valid_cookie_id(sid):
            sid = None
        peer = request.peer
        headers = self.hygiene.to_upstream(
            request.headers, peer=peer, trusted_proxy=peer in self.trusted,
            proto=request.scheme, host=host, rid=rid)
        body, length = await self._body(request)
        return Exchange(request, rid, target, match.route, sid, cookies.get(AFFINITY_COOKIE),
                        headers, body, length, cookies.get(SYNC_COOKIE),
                        client_id=cookies.get(CLIENT_COOKIE))

    def _screen(self, request: Incoming) -> tuple[str | None, Target]:
        """Smuggling shapes, the Host, the canonical path, blocked paths: before any route.
        The host returned is the validated one (None: HTTP/1.0 without one, allowed)."""
        screen(request.headers)
        try:
            host = self.hosts.resolve(request.headers.getall("Host", []),
                                      http10=request.version < (1, 1))
        except BadRequest as exc:
            self.metrics.host_refused.labels("public", exc.code).inc()
            raise
        target = canonical(request.target, self._limits.max_url_bytes)
        pattern = self.router.blocked.match(target.path)
        if pattern is not None:
            self.metrics.blocked.labels(pattern).inc()
            raise PathBlocked(target.path, pattern)
        return host, target

    def _duplicate(self, request: Incoming, path: str,
                   host: str | None) -> DuplicateSessionCookie:
        """Two session cookies: the gateway and the monolith could take different users.
        The answer expires them all, so the browser's next request carries none."""
        self.metrics.session("refused", "duplicate_session_cookie")
        _log.warning("session_cookie_duplicate", path=path)
        err = DuplicateSessionCookie(f"more than one {self._cookie} cookie; they have been "
                                     "cleared, send the request again")
        err.cookies = expire_lines(self._cookie, path, host or "",
                                   secure=request.scheme == "https")
        return err

    async def _body(self, request: Incoming
                    ) -> tuple[bytes | AsyncIterator[bytes] | None, int | None]:
        """Small bodies are read whole (resendable on fallback); large ones stream, capped."""
        if not request.body_exists:
            return None, None
        length = request.length
        limit = self._limits.max_body_bytes
        if length is not None and length > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
        await _expect_continue(request)
        if length is not None and length <= self._limits.buffer_body_bytes:
            return await request.read(), length
        return _capped(request.chunks(), limit), length

    def _decide(self, ex: Exchange) -> Coroutine[Any, Any, Decision]:
        """``Decider.decide``, acting on its answer (explain asks the same function).

        A plain function handing back the decider's coroutine: no extra await per
        request. A canary buckets a request without a session by its ``strangler_cid``;
        a client without one gets one here (set on the response).
        """
        route = ex.route
        cid = ex.client_id
        if ex.sid is None and cid is None and self.decider.needs_key(route):
            cid = ex.new_cid = secrets.token_urlsafe(16)
        return self.decider.decide(route, ex.sid, cid, store_up=self.bridge.store.up,
                                   new_healthy=bool(self.new.healthy),
                                   breaker=self.breakers[route.name], pins=self.pins, acting=True)

    async def _via_legacy(self, ex: Exchange, reason: str) -> Served:
        safe = ex.request.method in _SAFE_METHODS
        plan = await self.bridge.before_legacy(ex.sid, ex.hint, ex.rid, ex.new_sync or ex.sync,
                                               safe)
        if plan.sync_cookie is not None:
            ex.new_sync = plan.sync_cookie
        for attempt in (0, 1):
            try:
                result = await plan.member.upstream.send(ex.outgoing())
            except UpstreamConnectError:
                self.legacy.mark_down(plan.member.id, "connect")
                if attempt or not ex.resendable:
                    raise
                plan = await self.bridge.before_legacy(ex.sid, None, ex.rid, None, safe)
                if plan.sync_cookie is not None:
                    ex.new_sync = plan.sync_cookie
                continue
            after = await self.bridge.after_legacy(plan, result.status, ex.request.method,
                                                   result.headers, ex.rid)
            if after.sync_cookie is not None:
                ex.new_sync = after.sync_cookie
            if after.error is not None:
                result.release()
                raise after.error
            if after.retry and not attempt and ex.resendable:
                result.release()
                plan = await self.bridge.before_legacy(ex.sid, plan.member.id, ex.rid,
                                                       ex.new_sync or ex.sync, safe)
                if plan.sync_cookie is not None:
                    ex.new_sync = plan.sync_cookie
                continue
            return Served(result, Backend.LEGACY, reason, plan.member.id)
        raise ServiceUnavailable("legacy could not serve the request")  # pragma: no cover

    async def _via_new(self, ex: Exchange, decision: Decision) -> Served:
        breaker = self.breakers[ex.route.name]
        self.budgets[ex.route.name].request()
        try:
            # With the client's own token: a dirty one makes the bridge resync first.
            token, fresh = await self.bridge.token_for_new(ex.sid, ex.hint, ex.rid, ex.sync,
                                                           ex.route.audience, ex.route.guests)
        except (StoreUnavailable, StoreBusy):
            return await self._fallback(ex, decision, "session_store_down", None)
        except BudgetExhausted:  # as in an outage: legacy with proof, else 503
            return await self._fallback(ex, decision, "session_budget", None)
        except ServiceUnavailable:  # a resync that could not finish: legacy may hold it
            return await self._fallback(ex, decision, "session_sync", None)
        except SessionUnbridgeable:
            # Its node is the only place the session is whole: whatever the stage.
            self.metrics.fallbacks.labels(ex.route.name, "session_unbridgeable").inc()
            return await self._via_legacy(ex, "fallback:session_unbridgeable")
        ex.new_sync = fresh
        if ex.sid is not None and ex.request.method not in _SAFE_METHODS:
            ex.new_sync = self.bridge.may_change_on_new(ex.sid)
        member = self.new.pick()
        if member is None:
            return await self._fallback(ex, decision, "no_new_instance", None)
        try:
            result = await member.upstream.send(
                ex.outgoing({IDENTITY_HEADER: token} if token else None))
        except UpstreamError as exc:
            if ex.sid is not None and ex.request.method not in _SAFE_METHODS:
                self.bridge.changed_on_new(ex.sid)
            self.metrics.upstream_errors.labels("new", exc.kind).inc()
            if isinstance(exc, UpstreamConnectError):
                self.new.mark_down(member.id, "connect")
            self.new.outcome(member, False, exc.kind)
            breaker.failure(exc.kind)
            return await self._fallback_after(ex, decision, exc.kind, exc)
        if ex.sid is not None and ex.request.method not in _SAFE_METHODS:
            self.bridge.changed_on_new(ex.sid)  # new has answered: its write is done
        if result.status >= 500 or result.stream is None:
            # A streamed body's outcome is known only at its end (see _relay).
            self.new.outcome(member, result.status < 500, f"status {result.status}")
        if result.status >= 500:
            breaker.failure(f"status {result.status}")
            self.metrics.upstream_errors.labels("new", "5xx").inc()
            reason = self._may_fall_back(ex, decision, "5xx")
            if reason is not None:
                result.release()
                return await self._fallback(ex, decision, reason, "5xx")
        elif result.stream is None:
            breaker.success()
        return Served(result, Backend.NEW, decision.reason)

    def _may_fall_back(self, ex: Exchange, decision: Decision, kind: str) -> str | None:
        """The fallback reason if the rules allow a retry on legacy and the budget has one."""
        reason: str | None = None
        refused: str | None
        if not decision.fallback:
            refused = "route_complete"
        elif not ex.resendable:
            refused = "body_streamed"
        else:
            # What was forwarded, not what the client sent: a key the client named in
            # Connection was stripped, and then it does not protect a retry.
            has_key = "Idempotency-Key" in ex.headers
            verdict = fallback_verdict(ex.route.fallback, ex.request.method, kind, has_key)
            reason = verdict.reason if verdict.retry else None
            refused = None if verdict.retry else verdict.reason
        if reason is not None and not self.budgets[ex.route.name].try_retry():
            reason, refused = None, "retry_budget_exhausted"
        if refused:
            self.metrics.fallbacks_refused.labels(ex.route.name, refused).inc()
            _log.warning("fallback_refused", route=ex.route.name, kind=kind, why=refused,
                         method=ex.request.method, complete=not decision.fallback,
                         streamed=not ex.resendable)
        return reason

    async def _fallback_after(self, ex: Exchange, decision: Decision, kind: str,
                              exc: UpstreamError) -> Served:
        reason = self._may_fall_back(ex, decision, kind)
        if reason is None:
            raise exc
        return await self._fallback(ex, decision, reason, kind)

    async def _fallback(self, ex: Exchange, decision: Decision, reason: str,
                        kind: str | None) -> Served:
        if not decision.fallback:
            raise ServiceUnavailable(f"route is complete and new failed ({reason})")
        self.metrics.fallbacks.labels(ex.route.name, reason).inc()
        _log.warning("fallback_taken", route=ex.route.name, reason=reason,
                     method=ex.request.method)
        served = await self._via_legacy(ex, f"fallback:{reason}")
        return served

    # ------------------------------------------------------------ response
    def _relay(self, ex: Exchange, served: Served) -> Reply:
        result = served.result
        headers = self.hygiene.to_client(result.headers)
        headers["X-Request-Id"] = ex.rid
        if self.cfg.debug_backend_header:
            headers[BACKEND_HEADER] = f"{served.backend.value}:{result.upstream_id}"
        if result.body is not None:
            reply = Reply(result.status, headers, result.body)
            if ex.request.method == "HEAD" and "Content-Length" in result.headers:
                reply.length = int(result.headers["Content-Length"])
        else:
            assert result.stream is not None
            reply = Reply(result.status, headers, stream=self._stream(ex, served),
                          length=result.stream.content_length)
        self._cookies(ex, served, reply)
        return reply

    async def _stream(self, ex: Exchange, served: Served) -> AsyncIterator[bytes]:
        """A body relayed as it arrives. Its outcome counts when it ends; if the
        backend fails midway the client's connection is cut (``Abort``); if the
        client leaves, the backend's connection is let go."""
        result = served.result
        try:
            async for chunk in result.chunks():
                yield chunk
        except UpstreamError as exc:
            _log.error("response_aborted", route=ex.route.name, reason=exc.detail)
            self._streamed_outcome(ex, served, exc.kind)
            raise Abort(exc.detail) from exc
        finally:
            result.release()
        self._streamed_outcome(ex, served, None)

    def _streamed_outcome(self, ex: Exchange, served: Served, failure: str | None) -> None:
        """A streamed answer from new counts for its breaker and instance when it ends."""
        if served.backend is not Backend.NEW or served.result.status >= 500:
            return
        member = self.new.members.get(served.result.upstream_id)
        if failure is None:
            self.breakers[ex.route.name].success()
        else:
            self.metrics.upstream_errors.labels("new", failure).inc()
            self.breakers[ex.route.name].failure(f"body {failure}")
        if member is not None:
            self.new.outcome(member, failure is None, f"body {failure}")

    def _cookies(self, ex: Exchange, served: Served, reply: Reply) -> None:
        affinity = served.legacy_node if served.legacy_node != ex.hint else None
        if not (affinity or ex.new_sync or ex.new_cid):
            return  # the common case: the client already holds them all
        for line in self._cookie_lines(ex, affinity):
            reply.headers.add("Set-Cookie", line)

    @staticmethod
    def _cookie_lines(ex: Exchange, affinity: str | None) -> list[str]:
        secure = ex.headers.get("X-Forwarded-Proto") == "https"
        lines = []
        if affinity:
            lines.append(set_cookie(AFFINITY_COOKIE, affinity, secure=secure))
        if ex.new_sync:
            lines.append(set_cookie(SYNC_COOKIE, ex.new_sync, secure=secure))
        if ex.new_cid:
            lines.append(set_cookie(CLIENT_COOKIE, ex.new_cid, secure=secure,
                                    max_age=30 * 86400))
        return lines


async def _expect_continue(request: Incoming) -> None:
    """Answer ``Expect: 100-continue`` ourselves, once the body is known to be welcome
    (an oversize one was refused above, so that client never sends it)."""
    expect = request.headers.get("Expect")
    if expect is None:
        return
    if expect.lower() != "100-continue" or request.version != (1, 1):
        raise ExpectationFailed(f"unsupported Expect: {expect[:40]}")
    await request.send_continue()


async def _capped(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """Stream a request body, refusing to pass more than ``limit`` bytes."""
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
        yield chunk


__all__ = ["LegacyPlan", "Pipeline"]
