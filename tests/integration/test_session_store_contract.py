"""The session store port, one behaviour on Redis and in memory.

Every test runs twice: on ``gateway.session.store.SessionStore`` against the real
Redis (its own key prefix) and on ``testkit.fakes.MemorySessionStore``. What is
asserted is what a user of ``gateway.session.port.SessionStorePort`` can see:
records, versions, compare-and-set, the fenced lock and its lease, TTLs, the
trouble kept apart, plus the raw record (``HGETALL`` / ``record``) and the new
services' write, which tests of the bridge use to look and to act as new.

Time: Redis's own clock on the one side; on the other, the wall clock plus a skew
that ``Side.elapse`` moves, so a wait on the loop lets leases run out as in Redis,
and a TTL passes without sleeping it out.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.document import EMPTY, Document
from adapters.handles import session_handle
from adapters.store import WRITE_SCRIPT, write_args
from gateway.session import budget as session_budget
from gateway.session.budget import BudgetExhausted, RedisBudget
from gateway.session.port import (
    LockLost,
    LockTimeout,
    SessionStorePort,
    StoreBusy,
    StoreUnavailable,
)
from gateway.session.store import SessionStore
from gateway.session.sync import Intent
from testkit.fakes import MemorySessionStore
from testkit.fakes.records import Records
from tests.support.keys import SESSION_KEY
from tests.support.net import await_until
from tests.support.redis_proc import PrivateRedis

DOC = Document.from_json('{"schema":2,"user":{"id":"u-1","name":"Ann"},'
                         '"fields":{"tags":["a"]},"extra":{"k":1}}')
LATER = Document.from_json('{"schema":2,"user":{"id":"u-1","name":"Ann"},'
                           '"fields":{"tags":["a","b"]},"extra":{"k":1}}')


class Skew:
    """The memory side's clock: the wall clock, moved on by ``elapse``."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.time() + self.skew


@dataclass
class Side:
    """One implementation, and what a test does to it that the port does not say."""

    name: str
    tmp: Path
    redis: aioredis.Redis | None = None
    prefix: str = ""
    clock: Skew = field(default_factory=Skew)
    records: Records | None = None
    made: list[SessionStorePort] = field(default_factory=list)
    private: list[PrivateRedis] = field(default_factory=list)
    clients: list[aioredis.Redis] = field(default_factory=list)

    def store(self, *, ttl_s: int = 60, lease_ms: int = 4000, max_in_flight: int = 64,
              pool_wait_s: float = 0.5) -> Any:
        """A store of one gateway process; every store of a test shares one Redis."""
        store: Any
        if self.redis is not None:
            store = SessionStore(self.redis, self.prefix, ttl_s, handle_key=SESSION_KEY,
                                 lease_ms=lease_ms, max_in_flight=max_in_flight,
                                 pool_wait_s=pool_wait_s)
        else:
            store = MemorySessionStore(ttl_s=ttl_s, lease_ms=lease_ms, clock=self.clock,
                                       max_in_flight=max_in_flight, pool_wait_s=pool_wait_s,
                                       latency_s=0.001, records=self.records)
            self.records = store.records
        self.made.append(store)
        return store

    async def breakable(self) -> tuple[Any, Callable[[], None], Callable[[], None]]:
        """A store whose Redis a test can hang and wake: (store, hang, wake)."""
        if self.redis is None:
            store = self.store()
            return store, lambda: store.outage(noticed=False), store.recover
        server = PrivateRedis(self.tmp / "redis").start()
        self.private.append(server)
        client = aioredis.Redis.from_url(server.url, socket_timeout=0.2,
                                         socket_connect_timeout=0.2)
        self.clients.append(client)
        store = SessionStore(client, self.prefix, 60, handle_key=SESSION_KEY,
                             probe_timeout_s=0.2)
        self.made.append(store)
        return store, server.pause, server.resume

    async def elapse(self, seconds: float) -> None:
        if self.redis is not None:
            await asyncio.sleep(seconds)
        else:
            self.clock.skew += seconds
            await asyncio.sleep(0)

    async def new_write(self, store: Any, sid: str, expected_v: int,
                        fields: dict[str, str | int], op: str = "") -> tuple[int, int]:
        """A new service's compare-and-set (``WRITE_SCRIPT``, bump 1, set-lv 0)."""
        if self.redis is None:
            return await store.service_write(sid, expected_v, fields, op=op)  # type: ignore[no-any-return]
        script = self.redis.register_script(WRITE_SCRIPT)
        code, v = await script(keys=[store.key(sid)], args=write_args(
            expected_v, store.ttl_s, bump=True, set_lv=False, fields=fields, op=op))
        return int(code), int(v)

    async def raw(self, store: Any, sid: str) -> dict[str, str]:
        if self.redis is None:
            return store.record(sid)  # type: ignore[no-any-return]
        got = await self.redis.hgetall(store.key(sid))
        return {k.decode(): v.decode() for k, v in got.items()}


@pytest.fixture(params=["redis", "memory"])
async def side(request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str,
               redis_client: aioredis.Redis) -> AsyncIterator[Side]:
    s = Side(request.param, tmp_path, redis_client if request.param == "redis" else None,
             key_prefix)
    try:
        yield s
    finally:
        for store in s.made:
            await store.stop()
        for client in s.clients:
            await client.aclose()
        for server in s.private:
            server.resume()
            server.stop()


def new_sid() -> str:
    return secrets.token_urlsafe(20)


def deadline(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


async def create(store: SessionStorePort, sid: str, doc: Document = DOC) -> int:
    """A session synced from node a (boot b1) at revision 3: the record at v 1."""
    lease, _ = await store.acquire(sid, deadline(2))
    written, v = await store.write(lease, 0, bump=True, set_lv=True, release=True, fields={
        "doc": doc.to_json(), "base": doc.to_json(), "node": "a@b1", "lrev": 3, "pi": ""})
    assert written and lease.released
    return v


# ------------------------------------------------------------------ reads and records
async def test_a_session_never_seen_reads_as_none_even_once_locked(side: Side) -> None:
    store, sid = side.store(), new_sid()
    assert await store.read(sid) is None
    lease, rec = await store.acquire(sid, deadline(2))
    assert rec is None and lease.ended_v == 0 and lease.fence > 0
    await store.release(lease)
    assert await store.read(sid) is None, "a lock alone is no session"
    assert set(await side.raw(store, sid)) == {"f", "lk", "le", "lo"}
    assert store.handle(sid) == session_handle(SESSION_KEY, sid)


async def test_a_write_under_the_lock_makes_the_record(side: Side) -> None:
    store, sid = side.store(), new_sid()
    lease, _ = await store.acquire(sid, deadline(2))
    intent = Intent(lease.fence, 1, "a@b1", DOC.to_json())
    written, v = await store.write(lease, 0, bump=True, set_lv=True, fields={
        "doc": DOC.to_json(), "base": EMPTY.to_json(), "node": "a@b1", "lrev": 3,
        "pi": intent.to_json()})
    assert (written, v) == (True, 1) and not lease.released
    await store.release(lease)
    rec = await store.read(sid)
    assert rec is not None
    assert (rec.v, rec.lv, rec.node, rec.boot, rec.lrev) == (1, 1, "a", "b1", 3)
    assert rec.doc == DOC and rec.base == EMPTY and rec.intent == intent
    assert rec.legacy_current and rec.node_field == "a@b1"
    assert abs(rec.t - side.clock()) <= 2
    assert set(await side.raw(store, sid)) == {"doc", "v", "lv", "node", "lrev", "base",
                                               "pi", "t", "f", "lk", "le", "lo"}


# ------------------------------------------------------------------ versions and CAS
async def test_a_write_whose_v_moved_lands_nothing_not_even_the_release(side: Side) -> None:
    store, sid = side.store(), new_sid()
    await create(store, sid)
    lease, rec = await store.acquire(sid, deadline(2))
    assert rec is not None and rec.v == 1
    assert await store.write(lease, 5, bump=True, release=True,
                             fields={"doc": LATER.to_json()}) == (False, 1)
    assert not lease.released
    with pytest.raises(LockTimeout):
        await side.store().acquire(sid, deadline(0.1))  # another process: still locked
    after = await store.read(sid)
    assert after is not None and after.doc == DOC and after.v == 1
    assert await store.write(lease, 1, bump=True, fields={"doc": LATER.to_json()}) == (True, 2)
    assert await store.write(lease, None, fields={"lrev": 4}) == (True, 2), "no bump, same v"
    assert await store.write(lease, None, bump=True, set_lv=True, release=True) == (True, 3)
    rec = await store.read(sid)
    assert rec is not None and (rec.v, rec.lv, rec.lrev) == (3, 3, 4) and rec.doc == LATER
    assert rec.base == DOC, "the merge base is what was written as base, untouched since"


async def test_new_services_compare_and_set_and_apply_an_op_once(side: Side) -> None:
    store, sid = side.store(), new_sid()
    born = {"doc": DOC.to_json(), "base": EMPTY.to_json(), "node": "", "lrev": 0, "lv": 0,
            "t": int(time.time())}
    assert await side.new_write(store, sid, 0, born) == (1, 1)
    assert await side.new_write(store, sid, 0, born) == (0, 1), "the id exists already"
    change = {"doc": LATER.to_json()}
    assert await side.new_write(store, sid, 1, change, op="op-1") == (1, 2)
    assert await side.new_write(store, sid, 2, change, op="op-1") == (2, 2), "applied once"
    rec = await store.read(sid)
    assert rec is not None and (rec.v, rec.lv, rec.node) == (2, 0, "")
    assert not rec.legacy_current
    lease, seen = await store.acquire(sid, deadline(2))
    assert seen is not None and seen.v == 2 and seen.doc == LATER
    assert await store.write(lease, 1, bump=True, release=True) == (False, 2)
    await store.release(lease)


async def test_a_drop_ends_the_session_and_v_keeps_counting(side: Side) -> None:
    store, sid = side.store(), new_sid()
    await create(store, sid)
    lease, _ = await store.acquire(sid, deadline(2))
    assert await store.write(lease, None, drop=True, release=True) == (True, 2)
    assert lease.released and await store.read(sid) is None
    assert set(await side.raw(store, sid)) == {"v", "t", "f", "lk", "le", "lo"}
    assert await side.new_write(store, sid, 0, {"doc": DOC.to_json()}) == (0, 2), \
        "a used id is never new again"
    lease, rec = await store.acquire(sid, deadline(2))
    assert rec is None and lease.ended_v == 2
    assert await store.write(lease, 2, bump=True, release=True,
                             fields={"doc": LATER.to_json()}) == (True, 3)
    rec = await store.read(sid)
    assert rec is not None and rec.doc == LATER
    assert (rec.v, rec.lv, rec.node, rec.lrev, rec.base_raw) == (3, 0, "", 0, None)


# ------------------------------------------------------------------ the lock
async def test_a_lock_is_contended_waited_for_and_timed_out(side: Side) -> None:
    store, sid = side.store(), new_sid()
    events: list[str] = []
    store.lock_events = lambda outcome, waited: events.append(outcome)
    held, _ = await store.acquire(sid, deadline(2))
    with pytest.raises(LockTimeout):
        await store.acquire(sid, deadline(0.1))
    waiting = asyncio.create_task(store.acquire(sid, deadline(5)))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await store.release(held)
    await store.release(held)  # twice: nothing more happens
    lease, _ = await waiting
    assert lease.fence > held.fence
    assert events == ["at_once", "timed_out", "after_wait"]
    await store.release(lease)


async def test_a_lease_runs_out_and_its_holder_writes_nothing(side: Side) -> None:
    stalled, other, sid = side.store(lease_ms=200), side.store(), new_sid()
    await create(stalled, sid)
    old, _ = await stalled.acquire(sid, deadline(2))
    await side.elapse(0.35)
    with pytest.raises(LockLost):
        await stalled.write(old, None, fields={"lrev": 9})
    assert old.released
    old, _ = await stalled.acquire(sid, deadline(2))
    await side.elapse(0.35)
    new, rec = await other.acquire(sid, deadline(0.5))  # the lease ran out: taken at once
    assert new.fence > old.fence and rec is not None and rec.lrev == 3
    await stalled.release(old)  # a stale lease releases nothing of the new holder's
    with pytest.raises(LockTimeout):
        await stalled.acquire(sid, deadline(0.1))
    with pytest.raises(LockLost):
        await stalled.write(old, None, fields={"lrev": 9})
    assert await other.write(new, 1, bump=True, release=True,
                             fields={"doc": LATER.to_json()}) == (True, 2)
    rec = await other.read(sid)
    assert rec is not None and rec.lrev == 3 and rec.doc == LATER


async def test_a_waiter_gets_a_lock_whose_holder_never_lets_go(side: Side) -> None:
    store, sid = side.store(lease_ms=200), new_sid()
    events: list[str] = []
    store.lock_events = lambda outcome, waited: events.append(outcome)
    gone, _ = await store.acquire(sid, deadline(2))
    lease, _ = await store.acquire(sid, deadline(5))  # waits out the lease on the loop
    assert lease.fence > gone.fence and events == ["at_once", "after_wait"]
    await store.release(lease)


# ------------------------------------------------------------------ TTL
async def test_every_write_refreshes_the_ttl_and_the_lock_does_not(side: Side) -> None:
    store, kept, left = side.store(ttl_s=1), new_sid(), new_sid()
    await create(store, kept)
    await create(store, left)
    await side.elapse(0.7)
    lease, _ = await store.acquire(kept, deadline(2))
    await store.write(lease, None, fields={"lrev": 4}, release=True)
    lease, _ = await store.acquire(left, deadline(2))  # a lock and a release: no write
    await store.release(lease)
    await side.elapse(0.7)
    assert await store.read(kept) is not None, "written 0.7 s ago, TTL 1 s"
    assert await store.read(left) is None, "last written 1.4 s ago"
    lease, rec = await store.acquire(left, deadline(2))
    assert rec is None and lease.ended_v == 0, "expired whole: nothing of it is left"
    await store.release(lease)
    assert await side.new_write(store, kept, 1, {"doc": LATER.to_json()}) == (1, 2)
    await side.elapse(0.7)
    assert await store.read(kept) is not None, "a new service's write refreshes it too"


# ------------------------------------------------------------------ trouble
async def test_a_full_pool_refuses_calls_but_is_never_an_outage(side: Side) -> None:
    store = side.store(max_in_flight=1, pool_wait_s=0.001)
    outcomes = await asyncio.gather(*(store.read(new_sid()) for _ in range(60)),
                                    return_exceptions=True)
    assert any(isinstance(o, StoreBusy) for o in outcomes), outcomes
    assert all(o is None or isinstance(o, StoreBusy) for o in outcomes), outcomes
    assert store.up


async def test_a_spent_budget_cuts_calls_and_is_not_an_outage(side: Side) -> None:
    store, sid = side.store(), new_sid()
    session_budget.begin(RedisBudget(0.0))
    try:
        with pytest.raises(BudgetExhausted):
            await store.read(sid)
        with pytest.raises(BudgetExhausted):
            await store.acquire(sid, deadline(1))
    finally:
        session_budget.begin(None)
    assert store.up
    lease, _ = await store.acquire(sid, deadline(0.5))  # nothing was left held
    await store.release(lease)


async def test_an_outage_is_seen_refused_and_recovered_from(side: Side) -> None:
    store, hang, wake = await side.breakable()
    recovered: list[bool] = []
    store.on_recover.append(lambda: recovered.append(True))
    first, second = new_sid(), new_sid()
    await create(store, first)
    events: list[str] = []
    store.lock_events = lambda outcome, waited: events.append(outcome)
    hang()
    watch = asyncio.create_task(store.watch(interval_s=0.05))
    try:
        await await_until(lambda: _false(store.up), timeout=10, what="the watch to see it")
    finally:
        watch.cancel()
    for sid in (first, second):
        with pytest.raises(StoreUnavailable):
            await store.acquire(sid, deadline(2))
    with pytest.raises(StoreUnavailable):
        await store.read(first)
    wake()
    await await_until(lambda: _true(store.up and bool(recovered)), timeout=10,
                      what="the store to see Redis back")
    lease, rec = await store.acquire(first, deadline(2))
    assert events == ["orphan_taken_back"], "its own lock, left by the lost acquire"
    assert rec is not None and rec.doc == DOC, "what was there before is there"
    await store.release(lease)
    assert await store.release_orphans() == 1, "the other lost acquire's"
    lease, _ = await store.acquire(second, deadline(0.2))
    assert events[-1] == "at_once"
    await store.release(lease)


async def _true(value: bool) -> bool:
    return value


async def _false(value: bool) -> bool:
    return not value

