"""``testkit.fakes.MemorySessionStore``: what a test does to it that the port does not say.

Its port behaviour is held to the Redis store's in
tests/integration/test_session_store_contract.py; here, the knobs: a clock in the
test's hand, an outage and its recovery, single failed calls, arranging and looking
at records, two processes on one store.
"""

from __future__ import annotations

import asyncio

import pytest

from adapters.document import EMPTY
from gateway.session import budget as session_budget
from gateway.session.budget import BudgetExhausted, RedisBudget
from gateway.session.port import LockLost, LockTimeout, StoreBusy, StoreUnavailable
from testkit.fakes import ManualClock, MemorySessionStore

SID = "s" * 22


def deadline(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_a_manual_clock_moves_leases_and_ttls_only_when_told() -> None:
    clock = ManualClock()
    store = MemorySessionStore(clock=clock, ttl_s=10, lease_ms=1000)
    lease, _ = await store.acquire(SID, deadline(1))
    await store.write(lease, 0, bump=True, fields={"doc": EMPTY.to_json()})
    assert store.ttl(SID) == 10
    clock.advance(1.0)
    with pytest.raises(LockLost):
        await store.write(lease, None, fields={"lrev": 1})
    clock.advance(8.999)
    assert await store.read(SID) is not None
    clock.advance(0.001)
    assert await store.read(SID) is None and store.ttl(SID) is None


async def test_an_outage_noticed_or_not_and_the_recovery() -> None:
    errors: list[int] = []
    store = MemorySessionStore(on_error=lambda: errors.append(1))
    recovered: list[bool] = []
    store.on_recover.append(lambda: recovered.append(True))
    store.outage(noticed=False)
    assert store.up, "nobody has asked yet"
    with pytest.raises(StoreUnavailable):
        await store.read(SID)
    assert not store.up and errors == [1]
    with pytest.raises(StoreUnavailable):
        await store.service_write(SID, 0, {"doc": EMPTY.to_json()})
    store.recover()
    assert store.up and recovered == [True]
    store.recover()
    assert recovered == [True], "only a store that was down recovers"
    store.outage()
    assert not store.up
    store.recover()
    assert recovered == [True, True]


async def test_single_failed_calls_leave_redis_up() -> None:
    store = MemorySessionStore()
    store.fail_next(1, "busy")
    with pytest.raises(StoreBusy):
        await store.read(SID)
    store.fail_next(1)
    with pytest.raises(StoreUnavailable):
        await store.acquire(SID, deadline(1))
    assert store.record(SID) == {}, "no answer, nothing done"
    store.fail_next(1, "answer_lost")
    with pytest.raises(StoreUnavailable):
        await store.acquire(SID, deadline(1))
    assert store.record(SID)["lk"] != "0", "done, though its answer was lost"
    assert store.up
    lease, _ = await store.acquire(SID, deadline(1))  # this process takes its own back
    await store.release(lease)
    assert store.calls == {"read": 1, "lock": 3, "release": 1}


async def test_records_arranged_and_shared_by_two_processes() -> None:
    one = MemorySessionStore(ttl_s=30)
    two = MemorySessionStore(records=one.records, lease_ms=100)
    one.put(SID, {"doc": EMPTY.to_json(), "v": 4, "lv": 4, "node": "a@b1", "lrev": 2})
    rec = await two.read(SID)
    assert rec is not None and (rec.v, rec.node, rec.boot, rec.lrev) == (4, "a", "b1", 2)
    assert one.record(SID)["node"] == "a@b1" and one.ttl(SID) == pytest.approx(30, abs=1)
    lease, _ = await two.acquire(SID, deadline(1))
    with pytest.raises(LockTimeout):
        await one.acquire(SID, deadline(0.05))
    await two.release(lease)
    assert await one.service_write(SID, 4, {"doc": EMPTY.to_json()}, op="op-1") == (1, 5)
    assert one.record(SID)["ops"] == "op-1"


async def test_a_lock_call_the_budget_cuts_finishes_and_is_released_off_the_request() -> None:
    store = MemorySessionStore(latency_s=0.05)
    events: list[str] = []
    store.lock_events = lambda outcome, waited: events.append(outcome)
    session_budget.begin(RedisBudget(0.01))
    try:
        with pytest.raises(BudgetExhausted):
            await store.acquire(SID, deadline(1))
    finally:
        session_budget.begin(None)
    await asyncio.sleep(0.2)  # the cut call takes the lock; the background release frees it
    assert store.record(SID)["lk"] == "0"
    lease, _ = await store.acquire(SID, deadline(1))
    assert events == ["at_once"], "nothing of ours left to take back"
    await store.release(lease)
