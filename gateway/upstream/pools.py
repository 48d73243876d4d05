"""Backend pools: sticky legacy nodes and round-robin new instances, with health.

Health is active (``GET /healthz`` every interval) and passive (a refused
connection ejects the member at once, until a check sees it answer again).
A legacy node's ``boot_id`` is tracked too: a node that restarted has lost
every session in its memory, and the session bridge must refill it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from multidict import CIMultiDict

from gateway.errors import UpstreamError
from gateway.observe import log
from gateway.settings import Ejection
from gateway.upstream.forward import Outgoing, Upstream

_log = log.get("upstreams")

_MAX_HEALTH_BODY = 64 * 1024
"""A health answer is a status and maybe a ``boot_id``; more is not read."""


@dataclass(slots=True)
class Member:
    upstream: Upstream
    healthy: bool = True
    boot_id: str = ""
    failures: int = 0
    """Consecutive failed requests (not health checks)."""
    ejections: int = 0
    ejected_until: float = 0.0

    @property
    def id(self) -> str:
        return self.upstream.id


class Pool:
    """A named set of members with health state; ``healthy`` is kept precomputed."""

    def __init__(self, kind: str, members: list[Upstream], health_path: str,
                 ejection: Ejection | None = None) -> None:
        self.kind = kind
        self.members = {m.id: Member(m) for m in members}
        self._health_path = health_path
        self.healthy: tuple[Member, ...] = tuple(self.members.values())
        self._rr = 0
        self._listeners: list[Callable[[Member], None]] = []
        self._ejection = ejection
        self.check_interval_s = 1.0

    def configure(self, members: list[Upstream], health_path: str,
                  ejection: Ejection | None, check_interval_s: float) -> list[Member]:
        """Swap in a reloaded member list; returns the members that are new.

        A member with the same id and URL keeps its health, boot id and ejection
        (only its upstream, with the new timeouts, is replaced); a new one gets
        no traffic until a health check has seen it answer.
        """
        members_now: dict[str, Member] = {}
        fresh = []
        for upstream in members:
            member = self.members.get(upstream.id)
            if member is not None and member.upstream.base_url == upstream.base_url:
                member.upstream = upstream
            else:
                member = Member(upstream, healthy=False)
                fresh.append(member)
            members_now[upstream.id] = member
        removed = sorted(set(self.members) - set(members_now))
        self.members = members_now
        self._health_path = health_path
        self._ejection = ejection
        self.check_interval_s = check_interval_s
        self._recompute()
        if fresh or removed:
            _log.info("upstreams_reconfigured", pool=self.kind,
                      added=[m.id for m in fresh], removed=removed)
        return fresh

    def on_change(self, listener: Callable[[Member], None]) -> None:
        self._listeners.append(listener)

    def mark_down(self, member_id: str, reason: str) -> None:
        member = self.members.get(member_id)
        if member is not None and member.healthy:
            member.healthy = False
            self._recompute()
            _log.warning("upstream_down", pool=self.kind, upstream=member_id, reason=reason)
            for listener in self._listeners:
                listener(member)

    def outcome(self, member: Member, ok: bool, reason: str = "") -> None:
        """Record a real request's result; eject an instance that keeps failing."""
        if ok:
            member.failures = 0
            return
        member.failures += 1
        e = self._ejection
        if e is None or member.failures < e.consecutive_failures:
            return
        member.ejections += 1
        seconds = min(e.base_ms * member.ejections, e.max_ms) / 1000
        member.ejected_until = time.monotonic() + seconds
        member.failures = 0
        self.mark_down(member.id, f"ejected for {seconds:g}s after {e.consecutive_failures} "
                                  f"consecutive failures, last: {reason}")

    def _mark_up(self, member: Member, boot_id: str) -> None:
        if member.ejected_until > time.monotonic():
            return  # ejected: a passing health check does not cut the ejection short
        changed = not member.healthy or (boot_id and boot_id != member.boot_id)
        restarted = bool(member.boot_id) and boot_id != member.boot_id
        member.boot_id = boot_id or member.boot_id
        if not member.healthy:
            member.healthy = True
            self._recompute()
            _log.info("upstream_up", pool=self.kind, upstream=member.id)
        if restarted:
            _log.warning("upstream_restarted", pool=self.kind, upstream=member.id)
        if changed:
            for listener in self._listeners:
                listener(member)

    def _recompute(self) -> None:
        self.healthy = tuple(m for m in self.members.values() if m.healthy)

    def round_robin(self) -> Member | None:
        healthy = self.healthy
        if not healthy:
            return None
        self._rr = (self._rr + 1) % len(healthy)
        return healthy[self._rr]

    async def check(self, member: Member) -> None:
        request = Outgoing("GET", self._health_path, CIMultiDict())
        try:
            result = await member.upstream.send(request)
        except UpstreamError as exc:
            self.mark_down(member.id, f"health check: {exc.kind}")
            return
        try:  # read whole (a chunked answer may still be arriving) so the connection is freed
            body = await result.whole(_MAX_HEALTH_BODY)
        except UpstreamError as exc:
            self.mark_down(member.id, f"health check: {exc.kind}")
            return
        if result.status != 200:
            self.mark_down(member.id, f"health check: status {result.status}")
            return
        boot_id = ""
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            boot_id = str(json.loads(body or b"{}").get("boot_id", ""))
        self._mark_up(member, boot_id)

    async def check_all(self) -> None:
        await asyncio.gather(*(self.check(m) for m in self.members.values()))

    async def run_checks(self, interval_s: float) -> None:
        self.check_interval_s = interval_s
        while True:
            await self.check_all()
            await asyncio.sleep(self.check_interval_s)


class LegacyPool(Pool):
    """Legacy nodes: a session sticks to its node while that node is healthy."""

    def pick(self, hint: str | None, key: str | None) -> Member | None:
        """The hinted node if healthy; else rendezvous-hash ``key``; else round-robin."""
        if hint:
            member = self.members.get(hint)
            if member is not None and member.healthy:
                return member
        if key:
            return self.rendezvous(key)
        return self.round_robin()

    def rendezvous(self, key: str, exclude: str | None = None) -> Member | None:
        """Highest-random-weight hashing: removing a node moves only its sessions."""
        best, best_score = None, -1
        k = zlib.crc32(key.encode())
        for m in self.healthy:
            if m.id == exclude:
                continue
            score = zlib.crc32(m.id.encode(), k)
            if score > best_score:
                best, best_score = m, score
        return best


class NewPool(Pool):
    """New service instances: stateless, so any healthy one will do."""

    def pick(self) -> Member | None:
        return self.round_robin()
