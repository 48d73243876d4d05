"""Session: whose session this is, and the bridge's work around each attempt.

Reads the cookies the gateway cares about (the monolith's session cookie by the
profile's duplicate rule, the affinity, sync and client cookies); a request with
two session cookies under ``reject`` is refused with their expiry. Around every
attempt the forward stage makes, it runs the bridge (``gateway.session.bridge``):
push before legacy, pull after it, a token for new, and the sync token the
client must carry next, kept on the exchange.
"""

from __future__ import annotations

from adapters.handles import valid_cookie_id
from adapters.wire import AFFINITY_COOKIE, CLIENT_COOKIE, SYNC_COOKIE
from gateway.edge.cookies import DuplicateCookie, expire_lines
from gateway.edge.cookies import parse as parse_cookies
from gateway.errors import DuplicateSessionCookie
from gateway.observe import log
from gateway.observe.metrics import Metrics
from gateway.pipeline.exchange import Exchange
from gateway.session.bridge import After, LegacyPlan, SessionBridge
from gateway.upstream.forward import UpstreamResult

_log = log.get("gateway")


class SessionStage:
    def __init__(self, bridge: SessionBridge, metrics: Metrics) -> None:
        self.bridge = bridge
        self._metrics = metrics
        profile = bridge.profile
        self._cookie = profile.cookie
        self._duplicates = profile.duplicates

    def identify(self, ex: Exchange) -> None:
        """The session, affinity, sync and client cookies onto the exchange."""
        request = ex.request
        raw = request.headers.getall("Cookie", ())
        try:
            cookies = parse_cookies(raw[0] if len(raw) == 1 else "; ".join(raw), self._cookie,
                                    self._duplicates)
        except DuplicateCookie:
            raise self._duplicate(ex) from None
        sid = cookies.get(self._cookie)
        ex.sid = sid if sid is not None and valid_cookie_id(sid) else None
        ex.hint = cookies.get(AFFINITY_COOKIE)
        ex.sync = cookies.get(SYNC_COOKIE)
        ex.client_id = cookies.get(CLIENT_COOKIE)

    def _duplicate(self, ex: Exchange) -> DuplicateSessionCookie:
        """Two session cookies: the gateway and the monolith could take different users.
        The answer expires them all, so the browser's next request carries none. Secure
        when the client is on https (a browser ignores an expiry of a ``__Secure-``
        cookie that does not say Secure)."""
        path = ex.target.path
        self._metrics.session("refused", "duplicate_session_cookie")
        _log.warning("session_cookie_duplicate", path=path)
        err = DuplicateSessionCookie(f"more than one {self._cookie} cookie; they have been "
                                     "cleared, send the request again")
        err.cookies = expire_lines(self._cookie, path, ex.host or "", secure=ex.secure)
        return err

    # ------------------------------------------------------------ around attempts
    async def before_legacy(self, ex: Exchange, hint: str | None,
                            sync: str | None) -> LegacyPlan:
        plan = await self.bridge.before_legacy(ex.sid, hint, ex.rid, sync, ex.safe)
        if plan.sync_cookie is not None:
            ex.new_sync = plan.sync_cookie
        return plan

    async def after_legacy(self, ex: Exchange, plan: LegacyPlan,
                           result: UpstreamResult) -> After:
        after = await self.bridge.after_legacy(plan, result.status, ex.request.method,
                                               result.headers, ex.rid)
        if after.sync_cookie is not None:
            ex.new_sync = after.sync_cookie
        return after

    async def for_new(self, ex: Exchange) -> str | None:
        # With the client's own token: a dirty one makes the bridge resync first.
        token, fresh = await self.bridge.token_for_new(ex.sid, ex.hint, ex.rid, ex.sync,
                                                       ex.route.audience, ex.route.guests)
        ex.new_sync = fresh
        return token

    def writing_on_new(self, ex: Exchange) -> None:
        """A request that may change the session on new is about to go there: the client's
        next request must not trust its old sync token."""
        if ex.sid is not None and not ex.safe:
            ex.new_sync = self.bridge.may_change_on_new(ex.sid)

    def written_on_new(self, ex: Exchange) -> None:
        """New has answered (or failed) a request that may have changed the session."""
        if ex.sid is not None and not ex.safe:
            self.bridge.changed_on_new(ex.sid)
