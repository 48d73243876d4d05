"""The gateway's side of the shared session record in Redis.

The real ``SessionStorePort`` (``gateway.session.port`` states what it promises):
wraps ``adapters.store`` (key names, fields, scripts) with this process's
Redis client. Three kinds of trouble are kept apart, because each calls for
something else (docs/consistency.md):

- ``StoreBusy``: no connection free within the wait -- this process is
  overloaded. The request is refused; it is never taken for an outage.
- ``StoreUnavailable``: Redis refused the connection or did not answer in
  time. A probe (PING) decides whether Redis is down for everyone; until it
  answers again the bridge serves only sessions whose latest state it can
  prove is on a legacy node.
- ``LockLost``: a fenced write found the sync lock no longer ours (its lease
  ran out, or another holder took it): nothing of ours landed.

The sync lock lives in the record itself (``lk``/``le``/``f``) and is fenced:
see ``adapters.store``. A lock whose acquire or release got no answer is
remembered with its owner token and taken back by the next acquire for that
session in this process (and released when Redis answers again), so a client
is never made to wait on a lock its own earlier request left behind.

Every call of a request runs under that request's Redis budget
(``gateway.session.budget``): a call past it is cut (``BudgetExhausted``),
which is neither an outage nor a reason to probe. A lock whose acquire, write
or release was cut is remembered like one that got no answer, and released in
the background (the lease ends it anyway), so the cut costs the request no
further round trip and leaves nothing held.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.handles import session_handle
from adapters.store import (
    FIELDS,
    SYNC_ACQUIRE,
    SYNC_RELEASE,
    SYNC_WRITE,
    session_key,
    sync_write_args,
)
from gateway.errors import ServiceUnavailable
from gateway.observe import log
from gateway.session import budget as session_budget
from gateway.session.budget import BudgetExhausted

# The port's values and failures (``gateway.session.port``), also importable from here.
from gateway.session.port import Lease as Lease
from gateway.session.port import LockLost as LockLost
from gateway.session.port import LockTimeout as LockTimeout
from gateway.session.port import Record as Record
from gateway.session.port import StoreBusy as StoreBusy
from gateway.session.port import StoreUnavailable as StoreUnavailable
from gateway.session.port import node_field as node_field
from gateway.session.port import parse_record as parse_record
from gateway.session.redis_client import RedisClient

_log = log.get("session_store")
T = TypeVar("T")
_ORPHANS_MAX = 10_000


def _finished(task: asyncio.Task[Any]) -> None:
    """A cut call ended: nobody waits for its answer (its failure counted already)."""
    if not task.cancelled():
        task.exception()


def _int(raw: Any) -> int:
    return int(raw) if raw is not None else 0


class SessionStore:
    """The session store on Redis (``SessionStorePort``; this module's docstring says
    how it tells overload, outage and a lost lock apart)."""

    def __init__(self, redis: RedisClient, prefix: str, ttl_s: int, *, handle_key: bytes,
                 max_in_flight: int = 64, pool_wait_s: float = 0.5, lease_ms: int = 4000,
                 probe_timeout_s: float = 0.5,
                 on_error: Callable[[], None] = lambda: None) -> None:
        self.redis = redis
        self._handle_key = handle_key
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.lease_ms = lease_ms
        self._acquire = redis.register_script(SYNC_ACQUIRE)
        self._sync = redis.register_script(SYNC_WRITE)
        self._release = redis.register_script(SYNC_RELEASE)
        self._slots = asyncio.Semaphore(max_in_flight)
        self._pool_wait = pool_wait_s
        self._probe_timeout = probe_timeout_s
        self.up = True
        self._probe: asyncio.Task[None] | None = None
        self.on_recover: list[Callable[[], None]] = []
        self._on_error = on_error
        self._orphans: OrderedDict[str, str] = OrderedDict()
        """sid -> owner token of a lock of ours whose acquire or release got no answer."""
        self._tasks: set[asyncio.Task[Any]] = set()
        """Calls a request's budget cut, finishing on their own, and the background
        releases of the locks they may hold."""
        self.lock_events: Callable[[str, float], None] = lambda outcome, waited: None
        """(outcome, seconds waited) of every acquire: for metrics."""

    def handle(self, sid: str) -> str:
        """The name tokens and Redis use for ``sid`` (never the cookie itself)."""
        return session_handle(self._handle_key, sid)

    def key(self, sid: str) -> str:
        return session_key(self.prefix, self.handle(sid))

    # ---------------------------------------------------------------- reads
    async def read(self, sid: str) -> Record | None:
        raw = await self._call(lambda: self.redis.hmget(self.key(sid), FIELDS), "read")
        return parse_record(sid, raw)

    # ---------------------------------------------------------------- the lock
    async def acquire(self, sid: str, deadline: float) -> tuple[Lease, Record | None]:
        """Take the sync lock of ``sid`` (waiting, at most until ``deadline`` on the loop's
        clock) and read the record in the same step."""
        loop = asyncio.get_running_loop()
        started, pause, busy = loop.time(), 0.005, False
        while True:
            owner = secrets.token_hex(8)
            orphan = self._orphans.get(sid, "")
            args = [self.lease_ms, self.ttl_s, owner, orphan]
            try:
                answer = await self._call(
                    lambda a=args: self._acquire(keys=[self.key(sid)], args=a),  # type: ignore[misc]
                    "lock")
            except StoreUnavailable:
                self._orphan(sid, owner)  # it may yet run in Redis, and take the lock
                raise
            except BudgetExhausted as exc:
                self._release_later(sid, owner, exc.pending)  # it may yet take the lock
                raise
            fence, left_ms = int(answer[0]), int(answer[1])
            if fence:
                waited = loop.time() - started
                if orphan:
                    self._orphans.pop(sid, None)
                outcome = "after_wait" if busy else (
                    "orphan_taken_back" if orphan else "at_once")
                self.lock_events(outcome, waited)
                rec = parse_record(sid, answer[2:])
                ended_v = _int(answer[3]) if rec is None else 0
                return Lease(sid, fence, owner, ended_v=ended_v), rec
            busy = True
            now = loop.time()
            if now >= deadline:
                self.lock_events("timed_out", now - started)
                raise LockTimeout("the session is being synchronised by another request")
            await asyncio.sleep(min(pause, left_ms / 1000, deadline - now))
            pause = min(pause * 2, 0.1)

    async def write(self, lease: Lease, expected_v: int | None, *, bump: bool = False,
                    set_lv: bool = False, release: bool = False, drop: bool = False,
                    fields: dict[str, str | int] | None = None) -> tuple[bool, int]:
        """A fenced write; (written, v now). ``LockLost`` if the fence no longer holds."""
        stamped = dict(fields or {})
        if not drop:
            stamped["t"] = int(time.time())
        args = sync_write_args(lease.fence, expected_v, self.ttl_s, bump=bump, set_lv=set_lv,
                               release=release, drop=drop, fields=stamped)
        try:
            answer = await self._call(lambda: self._sync(keys=[self.key(lease.sid)], args=args),
                                      "write")
        except StoreUnavailable:
            self._orphan(lease.sid, lease.owner)
            lease.released = True  # not ours to release any more: taken back later
            raise
        except BudgetExhausted as exc:
            self._release_later(lease.sid, lease.owner, exc.pending)
            lease.released = True
            raise
        code, v = int(answer[0]), int(answer[1])
        if code < 0:
            lease.released = True
            raise LockLost("the session's sync lock was lost (lease over or taken over)")
        if release and code == 1:
            lease.released = True
        return code == 1, v

    async def release(self, lease: Lease) -> None:
        """Best effort: a lock we could not release is remembered and taken back later."""
        if lease.released:
            return
        lease.released = True
        try:
            await self._call(lambda: self._release(keys=[self.key(lease.sid)],
                                                   args=[lease.fence, lease.owner]), "release")
        except StoreUnavailable:
            self._orphan(lease.sid, lease.owner)
        except BudgetExhausted as exc:
            self._release_later(lease.sid, lease.owner, exc.pending)
        except ServiceUnavailable:
            pass  # busy: the lease runs out by itself

    def _orphan(self, sid: str, owner: str) -> None:
        """A lock of ours whose acquire or release got no answer: its holder is gone."""
        self._orphans[sid] = owner
        self._orphans.move_to_end(sid)
        while len(self._orphans) > _ORPHANS_MAX:
            self._orphans.popitem(last=False)

    def _release_later(self, sid: str, owner: str, pending: asyncio.Future[Any] | None) -> None:
        """A lock call of ours was cut by the request's budget: Redis answers, so once
        the cut call is done (it may yet take the lock), release the lock off the
        request (its budget is spent), by owner token."""
        self._orphan(sid, owner)
        task = session_budget.spawn(self._release_orphan(sid, owner, pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _release_orphan(self, sid: str, owner: str,
                              pending: asyncio.Future[Any] | None = None) -> None:
        if pending is not None:
            await asyncio.wait({pending})
        try:
            await self._call(lambda: self._release(keys=[self.key(sid)], args=[0, owner]),
                             "release")
        except ServiceUnavailable:
            return  # stays remembered: taken back by the next acquire, or after an outage
        if self._orphans.get(sid) == owner:
            del self._orphans[sid]

    async def release_orphans(self) -> int:
        """After Redis answers again: release every lock whose release got no answer."""
        released = 0
        for sid, owner in list(self._orphans.items()):
            try:
                await self._call(lambda s=sid, o=owner: self._release(  # type: ignore[misc]
                    keys=[self.key(s)], args=[0, o]))
            except ServiceUnavailable:
                return released
            if self._orphans.get(sid) == owner:
                del self._orphans[sid]
            released += 1
        return released

    # ---------------------------------------------------------------- calls and health
    async def _call(self, command: Callable[[], Awaitable[T]], op: str = "ping") -> T:
        """One Redis call, under the current request's budget if there is one.

        A call the budget cuts is not cancelled: the request stops waiting, and the
        call finishes on its own (``BudgetExhausted.pending``), so its connection goes
        back to the pool whole -- cancelling would close it, and on a slow Redis every
        new connection costs round trips more (a probe then fails on them)."""
        budget = session_budget.current()
        if budget is None:
            return await self._run(command)
        task: asyncio.Task[T] | None = None
        try:
            async with budget.spend(op):
                task = asyncio.ensure_future(self._run(command))
                return await asyncio.shield(task)
        except BudgetExhausted as exc:
            if task is not None:
                exc.pending = task  # type: ignore[assignment]
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                task.add_done_callback(_finished)
            raise

    async def _run(self, command: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self._pool_wait):
                await self._slots.acquire()
        except TimeoutError:
            raise StoreBusy("no Redis connection free in time: the gateway is overloaded") \
                from None
        try:
            return await command()
        except MaxConnectionsError as exc:
            raise StoreBusy(f"Redis connection pool exhausted: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        finally:
            self._slots.release()

    def _failed(self, exc: BaseException) -> StoreUnavailable:
        """One command failed: refuse it, and let a probe decide whether Redis is down."""
        self._on_error()
        refused = isinstance(exc, RedisConnectionError) and \
            not isinstance(exc, RedisTimeoutError) and "Timeout" not in str(exc)
        if refused and self.up:
            self._mark_down(exc)  # nothing listens: no need to wait for a probe
        if self._probe is None or self._probe.done():
            self._probe = session_budget.spawn(self._probe_until_up(exc))
        return StoreUnavailable(f"session store unavailable: {type(exc).__name__}")

    def _mark_down(self, exc: BaseException) -> None:
        self.up = False
        _log.error("session_store_down", reason=f"{type(exc).__name__}: {exc}")

    async def _probe_until_up(self, first: BaseException) -> None:
        delay, failed = 0.05, False
        while True:
            try:
                async with asyncio.timeout(self._probe_timeout):
                    await self.redis.ping()
            except (RedisError, OSError, TimeoutError) as exc:
                if self.up:
                    self._mark_down(exc if failed else first)
                failed = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            if not self.up:
                self.up = True
                _log.info("session_store_recovered")
                for callback in self.on_recover:
                    callback()
            return

    async def watch(self, interval_s: float = 0.25) -> None:
        """PING every ``interval_s`` while Redis is up, so a hang is noticed (and readiness
        says so) within about a second even when no session traffic is asking."""
        while True:
            await asyncio.sleep(interval_s)
            if not self.up:
                continue
            try:
                async with asyncio.timeout(self._probe_timeout):
                    await self._call(self.redis.ping)
            except TimeoutError as exc:
                self._failed(exc)
            except ServiceUnavailable:
                pass  # StoreUnavailable started the probe; StoreBusy is no outage

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        for task in list(self._tasks):
            task.cancel()
