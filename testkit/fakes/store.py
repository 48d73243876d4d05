"""``MemorySessionStore``: the session store port in memory, with the Redis store's semantics.

What ``gateway.session.store.SessionStore`` does around its scripts, done here around
``Records``: the acquire loop with its back-off and ``lock_events``, the request's
Redis budget, the connection slots (``StoreBusy``), the orphaned locks taken back
or released after an outage. What Redis does to it, a test does: ``outage``,
``recover``, ``fail_next``; and the new services' writes: ``service_write``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from adapters.handles import session_handle
from adapters.store import sync_write_args, write_args
from gateway.errors import ServiceUnavailable
from gateway.session import budget as session_budget
from gateway.session.budget import BudgetExhausted
from gateway.session.port import (
    Lease,
    LockLost,
    LockTimeout,
    Record,
    SessionStorePort,
    StoreBusy,
    StoreUnavailable,
    parse_record,
)

from ..keys import SESSION_KEY
from .records import Records

T = TypeVar("T")
Fault = Literal["unavailable", "busy", "answer_lost"]
"""What ``fail_next`` does to a call: ``unavailable`` no answer, nothing done; ``busy``
no connection free (``StoreBusy``), nothing done; ``answer_lost`` done, but the answer
never came back (``StoreUnavailable``), as when a hung Redis wakes after the timeout."""


class MemorySessionStore:
    """``SessionStorePort`` in memory: every call does what its script does in Redis.

    ``clock`` is the store's own time, as Redis's is: leases, fences, TTLs (default
    ``time.time``; a ``ManualClock`` moves them on command). The acquire loop waits on
    the event loop's clock, as the Redis store does. ``records``: another store's, for
    a second gateway process on the same Redis (its clock comes with it).
    ``latency_s`` is every call's round trip (even 0 yields to the loop once, as any
    I/O does); with ``max_in_flight`` and ``pool_wait_s`` it makes ``StoreBusy`` as a
    full pool does. Calls run under the current request's Redis budget
    (``gateway.session.budget``), and one the budget cuts is left to finish.
    """

    def __init__(self, *, handle_key: bytes = SESSION_KEY, ttl_s: int = 86_400,
                 lease_ms: int = 4000, clock: Callable[[], float] = time.time,
                 latency_s: float = 0.0, max_in_flight: int = 64, pool_wait_s: float = 0.5,
                 on_error: Callable[[], None] = lambda: None,
                 records: Records | None = None) -> None:
        self._handle_key = handle_key
        self.records = records if records is not None else Records(clock)
        self.ttl_s = ttl_s
        self.lease_ms = lease_ms
        self.latency_s = latency_s
        self.up = True
        self.on_recover: list[Callable[[], None]] = []
        self.lock_events: Callable[[str, float], None] = lambda outcome, waited: None
        self.calls: Counter[str] = Counter()
        """Calls made, by kind (``read``, ``lock``, ``write``, ``release``), answered or not."""
        self._on_error = on_error
        self._slots = asyncio.Semaphore(max_in_flight)
        self._pool_wait = pool_wait_s
        self._down = False
        self._faults: deque[Fault] = deque()
        self._orphans: OrderedDict[str, str] = OrderedDict()
        """sid -> owner token of a lock of ours whose acquire or release got no answer."""
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------ the port
    def handle(self, sid: str) -> str:
        return session_handle(self._handle_key, sid)

    async def read(self, sid: str) -> Record | None:
        return parse_record(sid, await self._call("read", lambda: self.records.read(sid)))

    async def acquire(self, sid: str, deadline: float) -> tuple[Lease, Record | None]:
        loop = asyncio.get_running_loop()
        started, pause, busy = loop.time(), 0.005, False
        while True:
            owner = secrets.token_hex(8)
            orphan = self._orphans.get(sid, "")
            try:
                fence, left_ms, raw = await self._call(
                    "lock", lambda o=owner, x=orphan: self.records.take(  # type: ignore[misc]
                        sid, o, x, self.lease_ms, self.ttl_s))
            except StoreUnavailable:
                self._orphan(sid, owner)  # it may have taken the lock
                raise
            except BudgetExhausted as exc:
                self._release_later(sid, owner, exc.pending)
                raise
            if fence:
                if orphan:
                    self._orphans.pop(sid, None)
                outcome = "after_wait" if busy else (
                    "orphan_taken_back" if orphan else "at_once")
                self.lock_events(outcome, loop.time() - started)
                rec = parse_record(sid, raw)
                ended_v = int(raw[1] or 0) if rec is None else 0
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
        stamped = dict(fields or {})
        if not drop:
            stamped["t"] = int(self.records.clock())
        sync_write_args(lease.fence, expected_v, 0, fields=stamped)  # refuses what it refuses
        try:
            code, v = await self._call("write", lambda: self.records.sync_write(
                lease.sid, lease.fence, expected_v, self.ttl_s, bump=bump, set_lv=set_lv,
                release=release, drop=drop, fields=stamped))
        except StoreUnavailable:
            self._orphan(lease.sid, lease.owner)
            lease.released = True
            raise
        except BudgetExhausted as exc:
            self._release_later(lease.sid, lease.owner, exc.pending)
            lease.released = True
            raise
        if code < 0:
            lease.released = True
            raise LockLost("the session's sync lock was lost (lease over or taken over)")
        if release and code == 1:
            lease.released = True
        return code == 1, v

    async def release(self, lease: Lease) -> None:
        if lease.released:
            return
        lease.released = True
        try:
            await self._call("release", lambda: self.records.unlock(
                lease.sid, lease.fence, lease.owner))
        except StoreUnavailable:
            self._orphan(lease.sid, lease.owner)
        except BudgetExhausted as exc:
            self._release_later(lease.sid, lease.owner, exc.pending)
        except ServiceUnavailable:
            pass  # busy: the lease runs out by itself

    async def release_orphans(self) -> int:
        released = 0
        for sid, owner in list(self._orphans.items()):
            try:
                await self._call("release", lambda s=sid, o=owner: self.records.unlock(  # type: ignore[misc]
                    s, 0, o))
            except ServiceUnavailable:
                return released
            if self._orphans.get(sid) == owner:
                del self._orphans[sid]
            released += 1
        return released

    async def watch(self, interval_s: float = 0.25) -> None:
        while True:
            await asyncio.sleep(interval_s)
            if self.up and self._down:
                self._failed()  # the watch's ping got no answer

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    # ------------------------------------------------------------ what a test does
    def outage(self, *, noticed: bool = True) -> None:
        """Redis stops answering: every call raises ``StoreUnavailable`` and does nothing.
        ``noticed``: ``up`` turns False at once; else at the first call that fails or the
        next ``watch`` tick, as with a Redis that refuses connections."""
        self._down = True
        if noticed:
            self.up = False

    def recover(self) -> None:
        """Redis answers again: ``up`` turns True and ``on_recover`` runs, at once (the
        Redis store's probe does this on its next ping)."""
        self._down = False
        if not self.up:
            self.up = True
            for callback in self.on_recover:
                callback()

    def fail_next(self, count: int = 1, fault: Fault = "unavailable") -> None:
        """The next ``count`` calls fail, one each, while Redis stays up (a probe would
        find it answering: ``up`` does not change)."""
        self._faults.extend([fault] * count)

    async def service_write(self, sid: str, expected_v: int, fields: dict[str, str | int], *,
                            bump: bool = True, set_lv: bool = False, op: str = ""
                            ) -> tuple[int, int]:
        """A new service's write (``adapters.store.WRITE_SCRIPT``, from another process):
        (1, v) written; (0, current v) ``v`` moved; (2, current v) ``op`` was applied
        before. ``StoreUnavailable`` during an outage; this process's budget, pool, faults
        and ``up`` play no part."""
        write_args(expected_v, 0, bump=bump, set_lv=set_lv, fields=fields, op=op)  # checks
        await asyncio.sleep(self.latency_s)
        if self._down:
            raise StoreUnavailable("session store unavailable (outage)")
        return self.records.cas(sid, expected_v, self.ttl_s, bump=bump, set_lv=set_lv, op=op,
                                fields=fields)

    def put(self, sid: str, fields: Mapping[str, str | int]) -> None:
        """Arrange a record as a test needs it: fields set as given (no script, no check),
        its TTL refreshed."""
        self.records.put(sid, fields, self.ttl_s)

    def record(self, sid: str) -> dict[str, str]:
        """Every field of the record as text (``HGETALL``); {} when there is none."""
        return self.records.all_fields(sid)

    def ttl(self, sid: str) -> float | None:
        """Seconds until the record expires; None when there is none."""
        return self.records.ttl(sid)

    # ------------------------------------------------------------ calls and trouble
    async def _call(self, op: str, command: Callable[[], T]) -> T:
        """As the Redis store's: under the request's budget, if any; a call the budget
        cuts is left to finish (it may yet take a lock), never cancelled."""
        self.calls[op] += 1
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
                self._keep(task)
                task.add_done_callback(_finished)
            raise

    async def _run(self, command: Callable[[], T]) -> T:
        try:
            async with asyncio.timeout(self._pool_wait):
                await self._slots.acquire()
        except TimeoutError:
            raise StoreBusy("no Redis connection free in time: the gateway is overloaded") \
                from None
        try:
            await asyncio.sleep(self.latency_s)
            fault = self._faults.popleft() if self._faults else None
            if self._down or fault == "unavailable":
                raise self._failed()
            if fault == "busy":
                raise StoreBusy("Redis connection pool exhausted (fail_next)")
            result = command()
            if fault == "answer_lost":
                raise self._failed()
            return result
        finally:
            self._slots.release()

    def _failed(self) -> StoreUnavailable:
        self._on_error()
        if self._down and self.up:
            self.up = False
        return StoreUnavailable("session store unavailable (outage or fail_next)")

    def _orphan(self, sid: str, owner: str) -> None:
        self._orphans[sid] = owner
        self._orphans.move_to_end(sid)

    def _release_later(self, sid: str, owner: str, pending: asyncio.Future[Any] | None) -> None:
        """A lock call the budget cut: once it is done, release by owner token, off the
        request (as the Redis store does)."""
        self._orphan(sid, owner)
        self._keep(session_budget.spawn(self._release_orphan(sid, owner, pending)))

    async def _release_orphan(self, sid: str, owner: str,
                              pending: asyncio.Future[Any] | None) -> None:
        if pending is not None:
            await asyncio.wait({pending})
        try:
            await self._call("release", lambda: self.records.unlock(sid, 0, owner))
        except ServiceUnavailable:
            return  # stays remembered
        if self._orphans.get(sid) == owner:
            del self._orphans[sid]

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _finished(task: asyncio.Task[Any]) -> None:
    """A cut call ended: nobody waits for its answer."""
    if not task.cancelled():
        task.exception()


if TYPE_CHECKING:  # mypy holds the fake to the port
    _port: SessionStorePort = MemorySessionStore()
