"""Forward: the router, last in the chain. Sends the request to the decided backend,
with the session bridged around every attempt, and applies the route's fallback
rules -- all retries and fallbacks are decided here, in one place.

    legacy   the session's node (sticky); a refused connection, or a node that turns
             out to have lost the session, is tried once more (a body in hand only)
    new      an identity token, a healthy instance; a failure falls back to legacy
             when the rules allow it (``gateway.routing.fallback``: safe methods,
             an Idempotency-Key, never reached) and the retry budget has one
    shadow   a legacy answer on a shadowed route is handed to the shadow stage

Each attempt on new is reported once (``_report``): the breaker, the instance's
ejection count and the error metric. A streamed answer is reported when it ends
(``Served.ended``).
"""

from __future__ import annotations

from adapters.wire import IDENTITY_HEADER
from gateway.errors import ServiceUnavailable, UpstreamConnectError, UpstreamError
from gateway.observe import log
from gateway.observe.metrics import Metrics
from gateway.pipeline.exchange import Exchange, Served, SessionSide, ShadowSink
from gateway.routing.breaker import Breaker
from gateway.routing.budget import RetryBudget
from gateway.routing.decide import Backend, Decision
from gateway.routing.fallback import fallback_verdict
from gateway.session.bridge import SessionUnbridgeable
from gateway.session.budget import BudgetExhausted
from gateway.session.port import StoreBusy, StoreUnavailable
from gateway.upstream.pools import LegacyPool, Member, NewPool

_log = log.get("gateway")


class Forward:
    def __init__(self, session: SessionSide, legacy: LegacyPool, new: NewPool,
                 breakers: dict[str, Breaker], budgets: dict[str, RetryBudget],
                 shadow: ShadowSink, metrics: Metrics) -> None:
        self._session = session
        self._legacy = legacy
        self._new = new
        self._breakers = breakers
        self._budgets = budgets
        self._shadow = shadow
        self._metrics = metrics

    async def __call__(self, ex: Exchange, decision: Decision) -> Served:
        if decision.backend is Backend.NEW:
            return await self._via_new(ex, decision)
        served = await self._via_legacy(ex, decision.reason)
        if decision.shadow:
            self._shadow.submit(ex, served.result)
        return served

    # ------------------------------------------------------------ legacy
    async def _via_legacy(self, ex: Exchange, reason: str) -> Served:
        session = self._session
        plan = await session.before_legacy(ex, ex.hint, ex.new_sync or ex.sync)
        for attempt in (0, 1):
            try:
                result = await plan.member.upstream.send(ex.outgoing())
            except UpstreamConnectError:
                self._legacy.mark_down(plan.member.id, "connect")
                if attempt or not ex.resendable:
                    raise
                plan = await session.before_legacy(ex, None, None)
                continue
            after = await session.after_legacy(ex, plan, result)
            if after.error is not None:
                result.release()
                raise after.error
            if after.retry and not attempt and ex.resendable:
                result.release()  # the node had lost the session: refilled, once more
                plan = await session.before_legacy(ex, plan.member.id, ex.new_sync or ex.sync)
                continue
            return Served(result, Backend.LEGACY, reason, plan.member.id)
        raise ServiceUnavailable("legacy could not serve the request")  # pragma: no cover

    # ------------------------------------------------------------ new
    async def _via_new(self, ex: Exchange, decision: Decision) -> Served:
        self._budgets[ex.route.name].request()
        try:
            token = await self._session.for_new(ex)
        except (StoreUnavailable, StoreBusy):
            return await self._fallback(ex, decision, "session_store_down")
        except BudgetExhausted:  # as in an outage: legacy with proof, else 503
            return await self._fallback(ex, decision, "session_budget")
        except ServiceUnavailable:  # a resync that could not finish: legacy may hold it
            return await self._fallback(ex, decision, "session_sync")
        except SessionUnbridgeable:
            # Its node is the only place the session is whole: whatever the stage.
            self._metrics.fallbacks.labels(ex.route.name, "session_unbridgeable").inc()
            return await self._via_legacy(ex, "fallback:session_unbridgeable")
        self._session.writing_on_new(ex)
        member = self._new.pick()
        if member is None:
            return await self._fallback(ex, decision, "no_new_instance")
        try:
            extra = {IDENTITY_HEADER: token} if token else None
            result = await member.upstream.send(ex.outgoing(extra))
        except UpstreamError as exc:
            self._session.written_on_new(ex)
            if isinstance(exc, UpstreamConnectError):
                self._new.mark_down(member.id, "connect")
            self._report(ex, member, exc.kind)
            reason = self._may_fall_back(ex, decision, exc.kind)
            if reason is None:
                raise
            return await self._fallback(ex, decision, reason)
        self._session.written_on_new(ex)  # new has answered: its write is done
        if result.status >= 500:
            self._report(ex, member, "5xx", f"status {result.status}")
            reason = self._may_fall_back(ex, decision, "5xx")
            if reason is not None:
                result.release()
                return await self._fallback(ex, decision, reason)
            return Served(result, Backend.NEW, decision.reason)
        if result.stream is None:
            self._report(ex, member, None)
            return Served(result, Backend.NEW, decision.reason)
        # A streamed body's outcome is known only at its end.
        return Served(result, Backend.NEW, decision.reason,
                      ended=lambda failure: self._report(ex, member, failure,
                                                         f"body {failure}"))

    def _report(self, ex: Exchange, member: Member, failure: str | None,
                detail: str | None = None) -> None:
        """One attempt on new, once: its breaker, its instance, the error count."""
        breaker = self._breakers[ex.route.name]
        if failure is None:
            breaker.success()
            self._new.outcome(member, True)
            return
        self._metrics.upstream_errors.labels("new", failure).inc()
        breaker.failure(detail or failure)
        self._new.outcome(member, False, detail or failure)

    # ------------------------------------------------------------ fallback
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
            has_key = ex.headers is not None and "Idempotency-Key" in ex.headers
            verdict = fallback_verdict(ex.route.fallback, ex.method, kind, has_key)
            reason = verdict.reason if verdict.retry else None
            refused = None if verdict.retry else verdict.reason
        if reason is not None and not self._budgets[ex.route.name].try_retry():
            reason, refused = None, "retry_budget_exhausted"
        if refused:
            self._metrics.fallbacks_refused.labels(ex.route.name, refused).inc()
            _log.warning("fallback_refused", route=ex.route.name, kind=kind, why=refused,
                         method=ex.method, complete=not decision.fallback,
                         streamed=not ex.resendable)
        return reason

    async def _fallback(self, ex: Exchange, decision: Decision, reason: str) -> Served:
        if not decision.fallback:
            raise ServiceUnavailable(f"route is complete and new failed ({reason})")
        self._metrics.fallbacks.labels(ex.route.name, reason).inc()
        _log.warning("fallback_taken", route=ex.route.name, reason=reason, method=ex.method)
        return await self._via_legacy(ex, f"fallback:{reason}")

