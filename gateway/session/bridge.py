"""The session bridge: one session, consistent on the monolith and in Redis.

Promises (docs/architecture.md, "The session bridge"; the invariants and the
reasoning behind each are in docs/consistency.md):

- first sight: a session the store does not know is pulled from its legacy
  node (lazy migration);
- before legacy: the node that serves the request holds the session's latest
  state -- if the store's document is newer (``v > lv``), or the node is not
  the one holding it (failover, restart), it is pushed there first;
- after legacy: if the node's revision moved, the change is pulled and merged
  into the store *before* the response is released;
- toward new: a cached JWT, so a new-routed request usually needs no Redis
  round trip here at all;
- never by corrupting: when the bridge cannot keep both sides consistent
  within its budget (Redis down or hung, the lock held, a node dying), the
  request is refused with 503 + Retry-After, or served by the node that
  provably holds the session's latest state.

Every push and pull runs under the session's fenced sync lock: the node's
copy is exported with the fence (so no older holder's import can land after),
``session_sync.assess`` decides what it means, and every Redis write names
the fence (so no older holder's write can land either).

What each process knows: per session, the client's ``strangler_sync`` token
and what this process last saw in sync with legacy under it (``Known``). A
non-safe request routed to new renews the token (and forgets the entry), so
while a client presents the token an entry was made for, the entry is still
the truth: the request goes to its node with no Redis round trip, and, when
Redis does not answer, it is the proof that the node holds the latest state.
A token that starts with ``.`` says a legacy node changed the session while
the store could not be told: any gateway process resyncs it before use.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from adapters.claims import Identity
from adapters.document import Document, SessionFormatError
from adapters.profile import SessionProfile, SessionUnfit
from gateway.errors import ServiceUnavailable, UpstreamError
from gateway.observe import log
from gateway.observe.metrics import Metrics
from gateway.session import budget as session_budget
from gateway.session.budget import BudgetExhausted, RedisBudget
from gateway.session.hook import LegacyHook
from gateway.session.port import (
    Lease,
    LockLost,
    Record,
    SessionStorePort,
    StoreBusy,
    StoreUnavailable,
    node_field,
)
from gateway.session.sync import Assessment, Copy, Held, Intent, assess
from gateway.session.tokens import TokenMinter
from gateway.upstream.pools import LegacyPool, Member

_log = log.get("session_bridge")
_NEGATIVE_TTL_S = 5.0
_UNFIT_TTL_S = 30.0
"""How long a process leaves a session that does not fit its profile to legacy before
looking at it again (it may fit after the monolith's next change)."""
_KNOWN_MAX = 100_000
DIRTY = "."
"""Prefix of a sync token that says: a legacy node is ahead of the store."""


class SessionUnbridgeable(Exception):
    """This session does not fit the profile: legacy serves it, sticky, alone."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SessionUnavailable(ServiceUnavailable):
    """The bridge refuses the request rather than serve it from a stale copy."""

    code = "session_unavailable"

    def __init__(self, detail: str, reason: str = "session_unavailable") -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(slots=True)
class Known:
    """What this process knows about a session while the client presents ``token``."""

    token: str
    node: str
    boot: str
    lrev: int
    """The node's revision of the session as last synced (or served, when ``ahead``)."""
    seen_at: float
    """Loop time when the knowledge was gathered (the sync or read began)."""
    ahead: bool = False
    """The node changed the session and the store has not got it yet."""


@dataclass(frozen=True, slots=True)
class LegacyPlan:
    member: Member
    sid: str | None
    lrev: int | None
    """The node's revision of the session when it was known in sync; None = unknown."""
    sync_cookie: str | None = None
    """A sync token to hand the client."""
    unfit: bool = False
    """The session does not fit the profile: served by its node as it is, not bridged."""


@dataclass(frozen=True, slots=True)
class After:
    retry: bool = False
    """The node had lost the session and rejected the request: refilled, send again."""
    sync_cookie: str | None = None
    error: UpstreamError | None = None
    """The node could not be asked what it changed: answer this, not its response."""


DONE = After()


@dataclass(frozen=True, slots=True)
class Synced:
    member: Member
    lrev: int
    """The node's revision of the session now."""
    current: bool
    """The node holds the record's document (a push, or a pull with nothing to merge)."""


class SessionBridge:
    def __init__(self, store: SessionStorePort, pool: LegacyPool, hook: LegacyHook,
                 minter: TokenMinter, metrics: Metrics, profile: SessionProfile,
                 budget_s: float = 3.0, redis_budget_s: float | None = None) -> None:
        """``budget_s``: one request's whole sync (wall clock); ``redis_budget_s``: the
        Redis time of one request's session work (None: unbounded but by the client's
        own timeouts)."""
        self.store = store
        self.profile = profile
        self.pool = pool
        self.hook = hook
        self.minter = minter
        self.metrics = metrics
        self.budget_s = budget_s
        self.redis_budget_s = redis_budget_s
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._unfit: OrderedDict[str, float] = OrderedDict()
        """sid -> monotonic time until which the session is left to legacy unbridged."""
        self.known: OrderedDict[str, Known] = OrderedDict()
        self._touched: OrderedDict[str, float] = OrderedDict()
        """sid -> loop time a non-safe request to new last started or ended here."""

    # ------------------------------------------------------------ the request's budget
    def begin(self) -> None:
        """A request starts: its session work gets a Redis budget of its own."""
        if self.redis_budget_s is not None:
            session_budget.begin(RedisBudget(self.redis_budget_s,
                                             self.metrics.session_budget_exhausted))

    def done(self) -> None:
        """The request is answered: note the Redis time its session work took."""
        budget = session_budget.current()
        if budget is not None and budget.spent_s:
            self.metrics.session_redis_time(budget.spent_s)

    # ------------------------------------------------------------ before legacy
    async def before_legacy(self, sid: str | None, hint: str | None, rid: str,
                            sync: str | None = None, safe: bool = True) -> LegacyPlan:
        """``safe``: the request only reads. A write always reads the record (one round
        trip), so it never acts on a copy a concurrent write on new left behind."""
        if sid is None:
            return LegacyPlan(self._pick(hint, None), None, None)
        if self._left_to_legacy(sid):
            return LegacyPlan(self._pick(hint, sid), sid, None, unfit=True)
        session_budget.stage("before_legacy")
        known = self._proof(sid, sync)
        dirty = _dirty(sync, known)
        if known is not None and not dirty and safe:
            self.metrics.push_skipped("known_in_sync")
            return LegacyPlan(self.pool.members[known.node], sid, known.lrev)
        if self.store.up:
            try:
                return await self._before(sid, hint, rid, sync, dirty)
            except SessionFormatError as exc:
                self._unbridgeable(sid, exc)
                return LegacyPlan(self._pick(hint, sid), sid, None, unfit=True)
            except (StoreUnavailable, StoreBusy) as exc:
                why = exc.code
            except BudgetExhausted as exc:
                why = exc.code
                if not safe:
                    # Redis answers (slowly), so new may have written since the proof was
                    # made, through another process: a write reads the record or is
                    # refused (docs/consistency.md, invariant 8). A read may use the proof.
                    known = None
            except ServiceUnavailable as exc:
                why = exc.reason if isinstance(exc, SessionUnavailable) else exc.code
        else:
            why = "store_down"
        if known is not None:
            self.metrics.push_skipped("served_from_proof")
            _log.warning("session_served_from_proof", why=why, node=known.node,
                         ahead=known.ahead)
            return LegacyPlan(self.pool.members[known.node], sid, known.lrev)
        self.metrics.refused(why)
        _log.warning("session_refused", why=why)
        raise SessionUnavailable("session unavailable: no reachable legacy node is known to "
                                 "hold this session's latest state; try again")

    async def _before(self, sid: str, hint: str | None, rid: str, sync: str | None,
                      dirty: bool) -> LegacyPlan:
        deadline = self._deadline()
        began = self._now()
        if not dirty:
            rec = await self.store.read(sid)
            if rec is not None:
                member = self._holder(rec)
                if member is not None and rec.legacy_current:
                    self.metrics.push_skipped("in_sync")
                    token = self._remember(sid, sync, member, rec.lrev, began)
                    return LegacyPlan(member, sid, rec.lrev, token)
            elif self._recently_unknown(sid):
                return LegacyPlan(self._pick(hint, sid), sid, None)
        synced = await self._reconcile(sid, hint, rid, deadline, push=True)
        if synced is None:
            return LegacyPlan(self._pick(hint, sid), sid, None)
        token = self._after_sync(sid, synced, began)
        return LegacyPlan(synced.member, sid, synced.lrev, token)

    # ------------------------------------------------------------ the locked sync
    async def _reconcile(self, sid: str, hint: str | None, rid: str, deadline: float, *,
                         push: bool, serving: Member | None = None) -> Synced | None:
        """Under the session's lock: take in what the node changed, and (``push``) make a
        healthy node hold the current document. Returns the node and its revision, or
        None when the session exists nowhere."""
        lease: Lease | None = None
        try:
            async with asyncio.timeout_at(deadline):
                lease, rec = await self.store.acquire(sid, deadline)
                return await self._sync_locked(lease, rec, hint, rid, push, serving)
        except TimeoutError:
            raise self._refuse("over_budget", "synchronising the session took longer than "
                                              "its budget") from None
        finally:
            if lease is not None and not lease.released:
                await _quietly(self.store.release(lease))

    async def _sync_locked(self, lease: Lease, rec: Record | None, hint: str | None,
                           rid: str, push: bool, serving: Member | None) -> Synced | None:
        """``serving``: the node that just answered with a change -- asked, whatever its
        health now: if it cannot be asked, the change may be lost, and the caller must
        not say it was made (an ``UpstreamError``)."""
        sid = lease.sid
        # A change legacy just answered is the later write; one found later is older
        # than whatever new wrote since (docs/consistency.md, "Merge rules").
        merge = functools.partial(self.profile.merge, legacy_later=serving is not None)
        for _ in range(4):
            if serving is not None:
                target = serving
                same = rec is not None and rec.node == serving.id and _same_boot(serving, rec)
                if rec is not None and not same:
                    self.metrics.stale_detected("served_by_other_node")
                    _log.warning("session_stale_base_detected", kind="served_by_other_node",
                                 node=serving.id)
            else:
                holder = self._holder(rec) if rec is not None else None
                same = holder is not None
                target = holder or self._pick(hint if rec is None else None, sid)
            copy = await self._export(target, sid, lease.fence, rid)
            if rec is None and copy is None and not lease.ended_v:
                # Never seen: it may live on any node. A session that ended (dropped:
                # a logout, a login that replaced it) comes back only from the node the
                # client is sticky to, as the monolith itself would serve it -- never
                # from a stale copy elsewhere.
                copy, target = await self._find_elsewhere(target, sid, lease.fence, rid)
            where = node_field(target.id, target.boot_id)

            def judge(r: Record | None, c: Copy | None = copy, w: str = where,
                      same: bool = same) -> Assessment:
                return assess(_held(r) if r is not None else None, w, same, c, merge)

            a = judge(rec)
            if a.gone:
                self._note_unknown(sid)
                await self.store.write(lease, None, release=True)
                return None
            self._count(a, target)
            if a.current or not push:
                _, _, a = await self._write(lease, rec, a, judge, release=True)
                return Synced(target, a.node_rev, a.current)
            doc_v, doc, a = await self._write(lease, rec, a, judge, intent_for=target)
            result = await self.hook.import_(target.upstream, sid, doc, a.node_rev, rid,
                                             fence=lease.fence)
            if result.fenced:
                raise LockLost("a newer sync holds the session on its node")
            if result.ok:
                await self.store.write(lease, None, release=True, fields={
                    "base": doc.to_json(), "lrev": result.revision,
                    "node": node_field(target.id, target.boot_id), "lv": doc_v, "pi": ""})
                self.metrics.session("push", a.reason)
                if a.reason == "rehydrate":
                    self.metrics.session("rehydrate", "node_lost")
                _log.info("session_pushed", reason=a.reason, node=target.id, v=doc_v,
                          legacy_rev=result.revision)
                return Synced(target, result.revision, True)
            # 409: the monolith changed the session since our export: look again
            self.metrics.session("conflict", "legacy_moved_before_push")
            rec = await self.store.read(sid)
        raise self._refuse("node_churn", "the session keeps changing on legacy")

    async def _write(self, lease: Lease, rec: Record | None, a: Assessment,
                     judge: Callable[[Record | None], Assessment], *,
                     release: bool = False, intent_for: Member | None = None
                     ) -> tuple[int, Document, Assessment]:
        """Write an assessment (compare-and-set on ``v`` when the document changes,
        re-assessed on the same copy if new wrote meanwhile). Returns the document
        now in the record, its ``v`` and the assessment that was written: when new
        wrote meanwhile, it is not the one given."""
        ended_v = lease.ended_v  # a dropped session keeps its v: re-creating it needs it
        for _ in range(8):
            fields = dict(a.fields)
            v0 = rec.v if rec is not None else ended_v
            doc_raw = str(fields.get("doc")) if a.bump else (rec.doc_raw.decode() if rec else "")
            doc_v = v0 + 1 if a.bump else v0
            if intent_for is not None:
                fields["pi"] = Intent(lease.fence, doc_v,
                                      node_field(intent_for.id, intent_for.boot_id),
                                      doc_raw).to_json()
            if not fields and not release:
                return doc_v, _doc(doc_raw), a
            ok, v = await self.store.write(lease, v0 if a.bump else None, bump=a.bump,
                                           set_lv=a.set_lv, release=release, fields=fields)
            if ok:
                if a.bump:
                    self.minter.forget(lease.sid)
                    _log.info("session_pulled", reason=a.reason, v=v,
                              legacy_rev=a.node_rev, merged=not a.set_lv)
                return doc_v, _doc(doc_raw), a
            # new wrote meanwhile: re-read, merge the same copy into its document
            rec = await self.store.read(lease.sid)
            if rec is None and ended_v == v:
                raise self._refuse("contended", "the session record kept changing")
            if rec is None:
                ended_v = v  # dropped meanwhile (or before, unseen): assess it anew
            a = judge(rec)
        raise self._refuse("contended", "the session record kept changing")

    async def _export(self, member: Member, sid: str, fence: int, rid: str) -> Copy | None:
        export = await self.hook.export(member.upstream, sid, rid, fence=fence)
        if export is None:
            return None
        return Copy(export.revision, export.doc, export.imported)

    async def _find_elsewhere(self, first: Member, sid: str, fence: int,
                              rid: str) -> tuple[Copy | None, Member]:
        """First sight and the hinted node does not know it: ask the other healthy nodes."""
        for member in self.pool.healthy:
            if member is first:
                continue
            try:
                copy = await self._export(member, sid, fence, rid)
            except UpstreamError:
                continue
            if copy is not None:
                return copy, member
        return None, first

    # ------------------------------------------------------------ after legacy
    async def after_legacy(self, plan: LegacyPlan, status: int, method: str,
                           headers: object, rid: str) -> After:
        get = headers.get  # type: ignore[attr-defined]
        resp_sid = get(self.profile.session_id_header)
        rev_s = get(self.profile.revision_header)
        if resp_sid is None or rev_s is None or not rev_s.isdigit():
            return DONE
        rev = int(rev_s)
        if resp_sid == plan.sid and plan.lrev is not None and rev == plan.lrev:
            return DONE  # legacy did not change it
        if resp_sid == plan.sid and plan.unfit:
            return DONE  # not bridged: its node keeps it (and every gateway knows it)
        if plan.sid is not None:
            self.known.pop(plan.sid, None)
        if resp_sid != plan.sid:
            self.known.pop(resp_sid, None)
        if not self.store.up:
            return self._ahead(resp_sid, plan.member, rev)
        session_budget.stage("after_legacy")
        try:
            return await self._after(plan, resp_sid, rev, status, method, rid)
        except SessionFormatError as exc:
            # The answer stands (the cookie too); the session stays with its node, and
            # the dirty token keeps every gateway from serving it from the store.
            self._unbridgeable(resp_sid, exc)
            return self._ahead(resp_sid, plan.member, rev)
        except UpstreamError as exc:
            # The node changed the session and cannot be asked what: it may have died
            # with the change. The client learns the outcome is unknown (the error),
            # and every gateway that the node is to be asked first (the dirty token).
            _log.warning("session_pull_failed", why=exc.kind, node=plan.member.id)
            return replace(self._ahead(resp_sid, plan.member, rev), error=exc)
        except ServiceUnavailable as exc:
            # Redis, the lock or the budget: the change is made and stays on the node,
            # which every gateway will ask before trusting the store.
            _log.warning("session_pull_deferred", why=exc.code, node=plan.member.id)
            return self._ahead(resp_sid, plan.member, rev)

    async def _after(self, plan: LegacyPlan, resp_sid: str, rev: int, status: int,
                     method: str, rid: str) -> After:
        deadline = self._deadline()
        began = self._now()
        if plan.sid is not None and resp_sid != plan.sid:
            await self._drop(plan.sid, "replaced_at_login", deadline)
        if rev == 0:
            if plan.lrev and resp_sid == plan.sid and (status == 401 or
                                                        method in ("GET", "HEAD")):
                # The node answered as if it never knew the session: it restarted or
                # lost it. Nothing was changed; refill it and send again.
                self.metrics.session("rehydrate", "node_forgot")
                _log.warning("session_node_forgot", node=plan.member.id)
                synced = await self._reconcile(resp_sid, plan.member.id, rid, deadline,
                                               push=True, serving=plan.member)
                if synced is None:
                    return DONE
                return After(retry=True, sync_cookie=self._after_sync(resp_sid, synced, began))
            if resp_sid == plan.sid or plan.lrev is not None:
                await self._drop(resp_sid, "ended_on_legacy", deadline)
            return DONE
        synced = await self._reconcile(resp_sid, plan.member.id, rid, deadline, push=False,
                                       serving=plan.member)
        if synced is None:
            return DONE
        return After(sync_cookie=self._after_sync(resp_sid, synced, began))

    def _ahead(self, sid: str, member: Member, rev: int) -> After:
        """The node changed the session and the store could not be told: the node is
        ahead. Its answer stands (the change is made); every gateway must resync the
        session before anything else reads it from the store."""
        if rev == 0:
            return DONE
        token = DIRTY + secrets.token_urlsafe(9)
        self._put(sid, Known(token, member.id, member.boot_id, rev, self._now(), ahead=True))
        self.metrics.session("deferred", "legacy_ahead")
        return After(sync_cookie=token)

    async def _drop(self, sid: str, reason: str, deadline: float) -> None:
        lease: Lease | None = None
        try:
            async with asyncio.timeout_at(deadline):
                lease, rec = await self.store.acquire(sid, deadline)
                if rec is not None:
                    await self.store.write(lease, None, drop=True, release=True)
        except TimeoutError:
            raise self._refuse("over_budget", "dropping the session took too long") from None
        finally:
            if lease is not None and not lease.released:
                await _quietly(self.store.release(lease))
        self.known.pop(sid, None)
        self.minter.forget(sid)
        self.metrics.session("drop", reason)
        _log.info("session_dropped", reason=reason)

    # ------------------------------------------------------------ toward new
    def may_change_on_new(self, sid: str) -> str:
        """A request that may change ``sid`` goes to new: forget it here and return the
        fresh sync token the client must get, so no process trusts an old entry."""
        self.changed_on_new(sid)
        return secrets.token_urlsafe(9)

    def changed_on_new(self, sid: str) -> None:
        """Such a request started or ended: nothing this process learnt about ``sid``
        before now may be trusted (a legacy request of another tab may have been syncing
        it meanwhile; its answer can reach the client after new's)."""
        self.known.pop(sid, None)
        self._touched[sid] = self._now()
        self._touched.move_to_end(sid)
        if len(self._touched) > _KNOWN_MAX:
            self._touched.popitem(last=False)

    async def token_for_new(self, sid: str | None, hint: str | None, rid: str,
                            sync: str | None = None, audience: str | None = None,
                            guests: bool = False) -> tuple[str | None, str | None]:
        """The identity token for a new-routed request (None: anonymous) and a sync
        token for the client when this request resynced its session. ``audience``: the
        service it is for; ``guests``: the route serves sessions with no user."""
        if sid is None:
            return None, None
        if self._left_to_legacy(sid):
            raise SessionUnbridgeable("session_unbridgeable")
        session_budget.stage("to_new")
        try:
            return await self._token_for_new(sid, hint, rid, sync, audience, guests)
        except SessionFormatError as exc:
            self._unbridgeable(sid, exc)
            raise SessionUnbridgeable("session_unbridgeable") from None

    async def _token_for_new(self, sid: str, hint: str | None, rid: str, sync: str | None,
                             audience: str | None, guests: bool
                             ) -> tuple[str | None, str | None]:
        known = self.known.get(sid)
        dirty = _dirty(sync, known) or (known is not None and known.ahead)
        if not dirty:
            token = self.minter.cached(sid, audience, guests)
            if token is not None:
                return token or None, None
        if not self.store.up:
            raise StoreUnavailable("session store unavailable")
        fresh: str | None = None
        deadline = self._deadline()
        began = self._now()
        rec = None if dirty else await self.store.read(sid)
        if rec is None:
            if not dirty and self._recently_unknown(sid):
                return None, None
            synced = await self._reconcile(sid, hint, rid, deadline, push=False)
            if synced is None:
                return None, None
            fresh = self._after_sync(sid, synced, began)
            rec = await self.store.read(sid)
            if rec is None:
                return None, fresh
        user = rec.doc.user
        if user is None and not guests:
            self.minter.note_guest(sid)
            return None, fresh
        self.metrics.session("token", "minted" if user is not None else "minted_guest")
        handle = self.store.handle(sid)  # tokens never carry the cookie itself
        identity = (Identity(handle, str(user.id), user.name, user.claims) if user is not None
                    else Identity(handle, None))
        return self.minter.mint(sid, identity, audience), fresh

    # ------------------------------------------------------------ recovery
    async def resync_all(self) -> None:
        """After an outage: pull every session a node changed while the store was away."""
        released = await self.store.release_orphans()
        if released:
            _log.info("session_locks_released", count=released)
        ahead = [(sid, k) for sid, k in list(self.known.items()) if k.ahead]
        for sid, known in ahead:
            try:
                synced = await self._reconcile(sid, known.node, "resync", self._deadline(),
                                               push=False)
            except SessionFormatError as exc:
                self._unbridgeable(sid, exc)
                continue
            except (StoreUnavailable, StoreBusy, UpstreamError, ServiceUnavailable) as exc:
                _log.warning("session_resync_failed", reason=str(exc))
                return
            if synced is not None and self.known.get(sid) is known:
                self.metrics.session("pull", "resync")
                if synced.current:
                    known.ahead, known.lrev = False, synced.lrev
                else:
                    del self.known[sid]

    # ------------------------------------------------------------ helpers
    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.budget_s

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _proof(self, sid: str, sync: str | None) -> Known | None:
        """This process's entry for ``sid`` if the client's token is the one it was made
        for and its node still serves the same boot."""
        known = self.known.get(sid)
        if known is None or sync is None or known.token != sync:
            return None
        member = self.pool.members.get(known.node)
        if member is None or not member.healthy or \
                (known.boot and member.boot_id and member.boot_id != known.boot):
            return None
        return known

    def _remember(self, sid: str, sync: str | None, member: Member, lrev: int,
                  began: float) -> str | None:
        """Note ``sid`` in sync on ``member``; returns a token to set if the client's is
        missing or says dirty."""
        fresh = sync is None or sync.startswith(DIRTY)
        token = secrets.token_urlsafe(9) if fresh else sync
        assert token is not None
        self._put(sid, Known(token, member.id, member.boot_id, lrev, began))
        return token if fresh else None

    def _after_sync(self, sid: str, synced: Synced, began: float) -> str:
        """A fresh token after a sync (no process may trust an entry made before it);
        remembered here when the node now holds the current document."""
        token = secrets.token_urlsafe(9)
        if synced.current:
            self._put(sid, Known(token, synced.member.id, synced.member.boot_id, synced.lrev,
                                 began))
        else:
            self.known.pop(sid, None)
        return token

    def _put(self, sid: str, known: Known) -> None:
        touched = self._touched.get(sid)
        if touched is not None and known.seen_at <= touched:
            self.known.pop(sid, None)  # learnt before a write on new ended: maybe stale
            return
        self.known[sid] = known
        self.known.move_to_end(sid)
        if len(self.known) > _KNOWN_MAX:
            self.known.popitem(last=False)

    def _holder(self, rec: Record) -> Member | None:
        """The record's node, if it is healthy and the same boot."""
        member = self.pool.members.get(rec.node)
        if member is None or not member.healthy or not _same_boot(member, rec):
            return None
        return member

    def _pick(self, hint: str | None, sid: str | None) -> Member:
        member = self.pool.pick(hint, sid)
        if member is None:
            raise ServiceUnavailable("no healthy legacy node")
        return member

    def _recently_unknown(self, sid: str) -> bool:
        seen = self._unknown.get(sid)
        return seen is not None and seen > time.monotonic()

    def _note_unknown(self, sid: str) -> None:
        self._unknown[sid] = time.monotonic() + _NEGATIVE_TTL_S
        if len(self._unknown) > 10_000:
            self._unknown.popitem(last=False)

    def _count(self, a: Assessment, target: Member) -> None:
        for kind, detail in a.events:
            if kind == "stale":
                self.metrics.stale_detected(detail)
                _log.warning("session_stale_base_detected", kind=detail, node=target.id)
            else:
                self.metrics.session(kind, detail)
        if a.conflicts:
            for where in a.conflicts:
                self.metrics.merge_conflict(where.partition("[")[0].partition(".")[0])
            _log.info("session_merge_conflict", fields=list(a.conflicts), node=target.id)

    def _left_to_legacy(self, sid: str) -> bool:
        until = self._unfit.get(sid)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._unfit[sid]
        return False

    def _unbridgeable(self, sid: str, exc: SessionFormatError) -> None:
        """The session does not fit the profile (or new wrote it broken): its node serves
        it as it is for a while; nothing else is touched."""
        reason = exc.reason if isinstance(exc, SessionUnfit) else "document"
        self._unfit[sid] = time.monotonic() + _UNFIT_TTL_S
        self._unfit.move_to_end(sid)
        if len(self._unfit) > 10_000:
            self._unfit.popitem(last=False)
        self.known.pop(sid, None)
        self.minter.forget(sid)
        self.metrics.unbridgeable(reason)
        _log.warning("session_unbridgeable", reason=reason, detail=str(exc))

    @staticmethod
    def _refuse(why: str, detail: str) -> SessionUnavailable:
        """The sync cannot finish; the caller decides whether that refuses the request."""
        return SessionUnavailable(f"session unavailable: {detail}; try again", why)


def _doc(raw: str) -> Document:
    return Document.from_json(raw)


def _held(rec: Record) -> Held:
    return Held(rec.doc_raw.decode(), rec.v, rec.node_field, rec.lrev,
                (rec.base_raw or b"").decode(), rec.lv, rec.intent)


def _dirty(sync: str | None, known: Known | None) -> bool:
    """The client's token says a node is ahead, and this process has not resynced it."""
    if sync is None or not sync.startswith(DIRTY):
        return False
    return known is None or known.token != sync or known.ahead


def _same_boot(member: Member, rec: Record) -> bool:
    return not rec.boot or not member.boot_id or rec.boot == member.boot_id


async def _quietly(awaitable: object) -> None:
    try:
        await awaitable  # type: ignore[misc]
    except (ServiceUnavailable, OSError):
        pass

