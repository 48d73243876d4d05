"""The session bridge: one session, consistent on the monolith and in Redis.

Promises (ARCHITECTURE.md, "The session bridge"):

- first sight: a session the store does not know is pulled from its legacy
  node (lazy migration);
- before legacy: if the shared document is newer than what the node holds
  (``v > lv``), or the node is not the one holding it (failover, restart),
  the document is pushed first -- a compare-and-set on the node's revision;
  a conflict means legacy changed meanwhile: pull, merge, push again;
- after legacy: if the node's revision moved, the change is pulled and
  merged into the store *before* the response is released, so the user's
  next request, wherever it goes, sees it;
- toward new: a cached JWT, minted from the store's user, so a new-routed
  request usually needs no Redis round trip here at all.

The fast path (legacy already current on a healthy node, revision unchanged)
costs one ``HMGET`` -- or none: each process remembers, per session, the
record it last saw in sync with legacy together with the client's
``strangler_sync`` cookie. Only a new service can change a session without
legacy's revision moving, and every request that may do so (a non-safe
method routed to new) renews that cookie; so while a client presents the same
token, the remembered record is still the truth and the request goes straight
to its node. Legacy's own changes still show in its revision header and are
pulled as always. Without the cookie (or after a renewal) the record is read.

Push and pull paths hold a short per-session Redis lock, so two gateways
never interleave a push with a pull for the same session. New services never
take that lock: their writes are compare-and-set on ``v``
and meet the gateway's writes through the three-way merge.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from adapters.claims import Identity
from adapters.session import merge
from adapters.wire import SESSION_ID_HEADER, SESSION_REV_HEADER
from gateway import log
from gateway.errors import ServiceUnavailable, UpstreamError
from gateway.legacy_hook import LegacyHook
from gateway.metrics import Metrics
from gateway.session_store import Record, SessionStore, StoreUnavailable, node_field
from gateway.tokens import TokenMinter
from gateway.upstreams import LegacyPool, Member

_log = log.get("session_bridge")
T = TypeVar("T")
_NEGATIVE_TTL_S = 5.0
_SYNCED_MAX = 100_000


class After(Enum):
    DONE = 0
    RETRY = 1
    """The node had lost the session and rejected the request: refilled, send again."""


@dataclass(frozen=True, slots=True)
class LegacyPlan:
    member: Member
    sid: str | None
    record: Record | None
    sync_cookie: str | None = None
    """A fresh ``strangler_sync`` token to hand the client, when it had none."""


class SessionBridge:
    def __init__(self, store: SessionStore, pool: LegacyPool, hook: LegacyHook,
                 minter: TokenMinter, metrics: Metrics) -> None:
        self.store = store
        self.pool = pool
        self.hook = hook
        self.minter = minter
        self.metrics = metrics
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._synced: OrderedDict[str, tuple[str, Record]] = OrderedDict()
        """sid -> (client's sync token, record) last seen in sync with legacy."""
        self.dirty: dict[str, str] = {}
        """Sessions served by legacy while Redis was down: sid -> node. Resynced on recovery."""

    # ------------------------------------------------------------ before legacy
    async def before_legacy(self, sid: str | None, hint: str | None, rid: str,
                            sync: str | None = None) -> LegacyPlan:
        if sid is None or not self.store.up:
            return self._degraded_plan(sid, hint)
        if sync is not None:
            known = self._synced.get(sid)
            if known is not None and known[0] == sync:
                rec = known[1]
                member = self.pool.members.get(rec.node)
                if member is not None and member.healthy and _same_boot(member, rec):
                    return LegacyPlan(member, sid, rec)  # no Redis round trip at all
        plan = await self._before_legacy(sid, hint, rid)
        if plan.record is not None and plan.record.legacy_current:
            token = sync or secrets.token_urlsafe(9)
            self._remember(sid, token, plan.record)
            if sync is None:
                plan = LegacyPlan(plan.member, sid, plan.record, token)
        return plan

    def _remember(self, sid: str, token: str, rec: Record) -> None:
        self._synced[sid] = (token, rec)
        self._synced.move_to_end(sid)
        if len(self._synced) > _SYNCED_MAX:
            self._synced.popitem(last=False)

    def may_change_on_new(self, sid: str) -> str:
        """A request that may change ``sid`` goes to new: forget it here and return the
        fresh sync token the client must get, so no process trusts an old record."""
        self._synced.pop(sid, None)
        return secrets.token_urlsafe(9)

    async def _before_legacy(self, sid: str, hint: str | None, rid: str) -> LegacyPlan:
        try:
            rec = await self.store.read(sid)
            if rec is None:
                rec = await self._first_sight(sid, hint, rid)
                if rec is None:
                    return LegacyPlan(self._pick(hint, sid), sid, None)
            member = self.pool.members.get(rec.node)
            if member is not None and member.healthy and rec.legacy_current \
                    and _same_boot(member, rec):
                return LegacyPlan(member, sid, rec)
            return await self._locked(sid, rid, lambda r: self._push(r, hint, rid))
        except StoreUnavailable:
            return self._degraded_plan(sid, hint)

    def _degraded_plan(self, sid: str | None, hint: str | None) -> LegacyPlan:
        member = self._pick(hint, sid)
        if sid is not None and not self.store.up:
            self.dirty[sid] = member.id
        return LegacyPlan(member, sid, None)

    def _pick(self, hint: str | None, sid: str | None) -> Member:
        member = self.pool.pick(hint, sid)
        if member is None:
            raise ServiceUnavailable("no healthy legacy node")
        return member

    async def _push(self, rec: Record | None, hint: str | None, rid: str) -> LegacyPlan:
        """Under the session lock: make a healthy node hold the current document."""
        if rec is None:
            raise ServiceUnavailable("session vanished during sync")
        current = self.pool.members.get(rec.node)
        same = current is not None and current.healthy and _same_boot(current, rec)
        if same and current is not None and rec.legacy_current:
            return LegacyPlan(current, rec.sid, rec)  # another request synced it meanwhile
        target = current if same and current else self._pick(hint, rec.sid)
        reason = "newer_shared" if same else ("rehydrate" if rec.node else "assign")
        expected: int | None = rec.lrev if same else None
        for _ in range(4):
            res = await self.hook.import_(target.upstream, rec.sid, rec.doc, expected, rid)
            if res.ok:
                rec = await self._record_synced(rec, target, res.revision)
                self.metrics.session("push", reason)
                if reason == "rehydrate":
                    self.metrics.session("rehydrate", "node_lost")
                _log.info("session_pushed", reason=reason, node=target.id, v=rec.lv,
                          legacy_rev=res.revision)
                return LegacyPlan(target, rec.sid, rec)
            # 409: the node changed the session since we last pulled it.
            self.metrics.session("conflict", "legacy_moved_before_push")
            rec = await self._pull(rec, target, "conflict_before_push", rid)
            expected = rec.lrev
        raise ServiceUnavailable("session keeps changing under the gateway; try again")

    async def _record_synced(self, pushed: Record, target: Member, revision: int) -> Record:
        """Note what the node now holds; never moves ``v`` (new may have written since)."""
        fields: dict[str, str | int] = {
            "lv": pushed.v, "node": node_field(target.id, target.boot_id), "lrev": revision,
            "base": pushed.doc_raw.decode(),
        }
        expected = pushed.v
        for _ in range(8):
            ok, v = await self.store.write(pushed.sid, expected, bump=False, set_lv=False,
                                           fields=fields)
            if ok:
                return Record(pushed.sid, pushed.doc_raw, v, pushed.v, target.id,
                              target.boot_id, revision, pushed.doc_raw, int(time.time()))
            expected = v
        raise ServiceUnavailable("session record contended; try again")

    # ------------------------------------------------------------ after legacy
    async def after_legacy(self, plan: LegacyPlan, status: int, method: str,
                           headers: object, rid: str) -> After:
        get = headers.get  # type: ignore[attr-defined]
        resp_sid, rev_s = get(SESSION_ID_HEADER), get(SESSION_REV_HEADER)
        if resp_sid is None or rev_s is None or not rev_s.isdigit():
            return After.DONE
        rev = int(rev_s)
        if not self.store.up:
            if rev:
                self.dirty[resp_sid] = plan.member.id
            return After.DONE
        try:
            return await self._after(plan, resp_sid, rev, status, method, rid)
        except StoreUnavailable:
            if rev:
                self.dirty[resp_sid] = plan.member.id
            return After.DONE

    async def _after(self, plan: LegacyPlan, resp_sid: str, rev: int, status: int,
                     method: str, rid: str) -> After:
        rec = plan.record if resp_sid == plan.sid else None
        if rec is not None and rec.node == plan.member.id and rec.lrev == rev:
            return After.DONE  # legacy did not change it: the remembered record stands
        # Whatever happens below rewrites the record: read it afresh next time.
        self._synced.pop(resp_sid, None)
        if plan.sid is not None:
            self._synced.pop(plan.sid, None)
        if plan.sid is not None and resp_sid != plan.sid:
            await self._drop(plan.sid, "replaced_at_login")
        if rev == 0:
            if rec is not None and rec.lrev and (status == 401 or method in ("GET", "HEAD")):
                # The node answered as if it never knew the session: it restarted
                # or lost it. Nothing was changed; refill it and send again.
                await self._locked(resp_sid, rid, lambda r: self._refill(r, plan.member, rid))
                return After.RETRY
            if rec is not None or plan.sid == resp_sid:
                await self._drop(resp_sid, "ended_on_legacy")
            return After.DONE
        await self._locked(resp_sid, rid,
                           lambda r: self._pull_or_create(resp_sid, r, plan.member, rev, rid))
        return After.DONE

    async def _refill(self, rec: Record | None, member: Member, rid: str) -> LegacyPlan:
        if rec is None:
            raise ServiceUnavailable("session vanished during refill")
        res = await self.hook.import_(member.upstream, rec.sid, rec.doc, None, rid)
        rec = await self._record_synced(rec, member, res.revision)
        self.metrics.session("rehydrate", "node_forgot")
        _log.warning("session_pushed", reason="node_forgot", node=member.id, v=rec.lv)
        return LegacyPlan(member, rec.sid, rec)

    async def _pull_or_create(self, sid: str, rec: Record | None, member: Member, rev: int,
                              rid: str) -> LegacyPlan:
        if rec is None:
            created = await self._create_from(member, sid, "new_on_legacy", rid)
            return LegacyPlan(member, sid, created)
        if rec.node == member.id and rec.lrev == rev:
            return LegacyPlan(member, sid, rec)  # another request pulled this revision already
        return LegacyPlan(member, sid, await self._pull(rec, member, "legacy_changed", rid))

    async def _pull(self, rec: Record, member: Member, reason: str, rid: str) -> Record:
        """Under the lock: take the node's session into the store, merging with new's writes."""
        export = await self.hook.export(member.upstream, rec.sid, rid)
        if export is None:
            await self._drop(rec.sid, "gone_on_legacy")
            raise ServiceUnavailable("session ended on legacy during sync")
        legacy = export.session
        for _ in range(8):
            merged = merge(rec.base, legacy, rec.doc)
            in_sync = merged == legacy
            if not rec.legacy_current:
                self.metrics.session("conflict", "merged")
            fields: dict[str, str | int] = {
                "doc": merged.to_json(), "base": legacy.to_json(),
                "node": node_field(member.id, member.boot_id), "lrev": export.revision,
            }
            if not in_sync:
                fields["lv"] = -1
            ok, v = await self.store.write(rec.sid, rec.v, bump=True, set_lv=in_sync,
                                           fields=fields)
            if ok:
                self.metrics.session("pull", reason)
                _log.info("session_pulled", reason=reason, node=member.id, v=v,
                          legacy_rev=export.revision, merged=not in_sync)
                self.minter.forget(rec.sid)
                doc = str(fields["doc"]).encode()
                return Record(rec.sid, doc, v, v if in_sync else -1, member.id, member.boot_id,
                              export.revision, str(fields["base"]).encode(), int(time.time()))
            fresh = await self.store.read(rec.sid)
            if fresh is None:
                created = await self._create_from(member, rec.sid, reason, rid)
                if created is None:
                    raise ServiceUnavailable("session ended on legacy during sync")
                return created
            rec = fresh
        raise ServiceUnavailable("session record contended; try again")

    # ------------------------------------------------------------ first sight
    async def _first_sight(self, sid: str, hint: str | None, rid: str) -> Record | None:
        seen = self._unknown.get(sid)
        if seen is not None and seen > time.monotonic():
            return None
        candidates = [self.pool.members[hint]] if hint in self.pool.members else []
        candidates = [m for m in candidates if m.healthy] or list(self.pool.healthy)
        for member in candidates:
            try:
                rec = await self._create_from(member, sid, "first_seen", rid)
            except UpstreamError:
                continue
            if rec is not None:
                return rec
        self._unknown[sid] = time.monotonic() + _NEGATIVE_TTL_S
        if len(self._unknown) > 10_000:
            self._unknown.popitem(last=False)
        return None

    async def _create_from(self, member: Member, sid: str, reason: str,
                           rid: str) -> Record | None:
        export = await self.hook.export(member.upstream, sid, rid)
        if export is None:
            return None
        doc = export.session.to_json()
        fields: dict[str, str | int] = {"doc": doc, "base": doc, "lrev": export.revision,
                                        "node": node_field(member.id, member.boot_id)}
        ok, v = await self.store.write(sid, 0, bump=True, set_lv=True, fields=fields)
        if not ok:
            return await self.store.read(sid)  # created concurrently: theirs stands
        self._unknown.pop(sid, None)
        self.metrics.session("pull", reason)
        _log.info("session_pulled", reason=reason, node=member.id, v=v,
                  legacy_rev=export.revision)
        return Record(sid, doc.encode(), v, v, member.id, member.boot_id, export.revision,
                      doc.encode(), int(time.time()))

    # ------------------------------------------------------------ toward new
    async def token_for_new(self, sid: str | None, hint: str | None, rid: str) -> str | None:
        """The identity token for a new-routed request; None for an anonymous one."""
        if sid is None:
            return None
        if sid not in self.dirty:
            token = self.minter.cached(sid)
            if token is not None:
                return token
        if not self.store.up:
            raise StoreUnavailable("session store unavailable")
        if sid in self.dirty:
            await self.resync(sid, rid)
        rec = await self.store.read(sid)
        if rec is None:
            rec = await self._first_sight(sid, hint, rid)
            if rec is None:
                return None
        user = rec.doc.user
        if user is None:
            return None
        self.metrics.session("token", "minted")
        return self.minter.mint(Identity(sid, user.id, user.username))

    # ------------------------------------------------------------ recovery
    async def resync(self, sid: str, rid: str) -> None:
        """Pull a session legacy served while Redis was down (it may be ahead)."""
        node_id = self.dirty.pop(sid, None)
        self._synced.pop(sid, None)
        member = self.pool.members.get(node_id or "")
        if member is None or not member.healthy:
            return
        rec = await self.store.read(sid)
        if rec is None:
            await self._create_from(member, sid, "resync", rid)
            return
        await self._locked(sid, rid, lambda r: self._pull(r or rec, member, "resync", rid))


    async def resync_all(self) -> None:
        for sid in list(self.dirty):
            try:
                await self.resync(sid, "resync")
            except (StoreUnavailable, UpstreamError, ServiceUnavailable) as exc:
                _log.warning("session_resync_failed", reason=str(exc))
                return

    # ------------------------------------------------------------ helpers
    async def _drop(self, sid: str, reason: str) -> None:
        await self.store.delete(sid)
        self.minter.forget(sid)
        self.metrics.session("drop", reason)
        _log.info("session_dropped", reason=reason)

    async def _locked(self, sid: str, rid: str,
                      action: Callable[[Record | None], Awaitable[T]]) -> T:
        async with self.store.locked(sid):
            return await action(await self.store.read(sid))


def _same_boot(member: Member, rec: Record) -> bool:
    return not rec.boot or not member.boot_id or rec.boot == member.boot_id

