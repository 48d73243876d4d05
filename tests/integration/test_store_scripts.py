"""The session record's scripts on a real Redis: compare-and-set, op ids, the fenced lock.

These are the promises docs/consistency.md builds on: a write with an op id is
applied once however often it is sent; the sync lock hands out ever larger
fences; a write under a fence lands only while that fence holds an unexpired
lease, so a holder that outlived its lease writes nothing.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import redis.asyncio as aioredis

from adapters.store import (
    OPS_KEPT,
    SYNC_ACQUIRE,
    SYNC_RELEASE,
    SYNC_WRITE,
    WRITE_SCRIPT,
    session_key,
    sync_write_args,
    write_args,
)
from tests.support.net import await_until


class Scripts:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.key = session_key(prefix, secrets.token_urlsafe(24))
        self.write = redis.register_script(WRITE_SCRIPT)
        self._acquire = redis.register_script(SYNC_ACQUIRE)
        self._sync = redis.register_script(SYNC_WRITE)
        self._release = redis.register_script(SYNC_RELEASE)

    async def cas(self, v: int, doc: str, op: str = "") -> list[int]:
        args = write_args(v, 60, bump=True, set_lv=False, fields={"doc": doc}, op=op)
        return list(await self.write(keys=[self.key], args=args))

    async def acquire(self, lease_ms: int = 5000, owner: str = "o1",
                      orphan: str = "") -> list[Any]:
        return list(await self._acquire(keys=[self.key], args=[lease_ms, 60, owner, orphan]))

    async def sync(self, fence: int, expected: int | None, **kw: Any) -> list[int]:
        return list(await self._sync(keys=[self.key], args=sync_write_args(fence, expected, 60,
                                                                           **kw)))

    async def release(self, fence: int, owner: str = "") -> int:
        return int(await self._release(keys=[self.key], args=[fence, owner]))

    async def field(self, name: str) -> str | None:
        raw = await self.redis.hget(self.key, name)
        return raw.decode() if raw is not None else None


async def test_a_write_with_an_op_id_is_applied_once(redis_client: aioredis.Redis,
                                                    key_prefix: str) -> None:
    s = Scripts(redis_client, key_prefix)
    assert await s.cas(0, "one", op="op-1") == [1, 1]
    # the same write again (its first answer lost): reported as done, not applied again
    assert await s.cas(1, "two", op="op-1") == [2, 1]
    assert await s.field("doc") == "one"
    assert await s.cas(0, "stale", op="op-2") == [0, 1]  # a plain conflict is a conflict
    assert await s.cas(1, "two", op="op-2") == [1, 2]


async def test_the_record_remembers_the_last_op_ids(redis_client: aioredis.Redis,
                                                   key_prefix: str) -> None:
    s = Scripts(redis_client, key_prefix)
    for i in range(OPS_KEPT + 5):
        assert (await s.cas(i, f"d{i}", op=f"op-{i}"))[0] == 1
    kept = (await s.field("ops") or "").split()
    assert len(kept) == OPS_KEPT and kept[-1] == f"op-{OPS_KEPT + 4}" and "op-0" not in kept
    assert (await s.cas(OPS_KEPT + 5, "x", op=f"op-{OPS_KEPT + 4}"))[0] == 2


async def test_the_lock_hands_out_growing_fences_and_returns_the_record(
        redis_client: aioredis.Redis, key_prefix: str) -> None:
    s = Scripts(redis_client, key_prefix)
    await s.cas(0, "doc")
    first = await s.acquire()
    fence = int(first[0])
    assert fence >= int(time.time() * 1000) - 60_000, "fences start at Redis's clock"
    assert first[1] == 0 and first[2] == b"doc" and first[3] == b"1"
    busy = await s.acquire(owner="o2")
    assert busy[0] == 0 and 0 < busy[1] <= 5000
    assert await s.release(fence) == 1
    again = await s.acquire(owner="o2")
    assert int(again[0]) > fence


async def test_a_write_under_a_lost_fence_lands_nowhere(redis_client: aioredis.Redis,
                                                        key_prefix: str) -> None:
    s = Scripts(redis_client, key_prefix)
    await s.cas(0, "doc")
    old = int((await s.acquire(lease_ms=50))[0])
    assert await s.sync(old, 1, fields={"lrev": 3}) == [1, 1]
    # the lease runs out on Redis's own clock; nobody has taken the lock yet
    await await_until(lambda: _taken(s), timeout=5, what="the lease to run out")
    new = int((await s.field("lk")) or 0)
    assert new > old
    assert await s.sync(old, 1, fields={"lrev": 99}) == [-1, 0], "the old holder is fenced"
    assert await s.field("lrev") == "3"
    assert await s.release(old) == 0, "nor can it release the new holder's lock"
    assert await s.sync(new, 1, release=True, fields={"lrev": 4}) == [1, 1]
    assert await s.sync(new, 1, fields={"lrev": 5}) == [-1, 0], "released means released"


async def _taken(s: Scripts) -> bool:
    return int((await s.acquire(owner="o2"))[0]) > 0


async def test_an_orphaned_lock_is_taken_back_by_its_owner_only(
        redis_client: aioredis.Redis, key_prefix: str) -> None:
    s = Scripts(redis_client, key_prefix)
    orphan = int((await s.acquire(owner="mine"))[0])  # its answer "lost": we never saw it
    assert (await s.acquire(owner="other", orphan="someone-else"))[0] == 0
    back = await s.acquire(owner="mine-2", orphan="mine")
    assert int(back[0]) > orphan
    assert await s.sync(orphan, None, fields={"lrev": 1}) == [-1, 0]


async def test_compare_and_set_under_the_lock_and_a_drop_that_keeps_v_growing(
        redis_client: aioredis.Redis, key_prefix: str) -> None:
    s = Scripts(redis_client, key_prefix)
    await s.cas(0, "doc")
    fence = int((await s.acquire())[0])
    assert await s.sync(fence, 0, bump=True, fields={"doc": "x"}) == [0, 1]
    assert await s.sync(fence, 1, bump=True, set_lv=True, fields={"doc": "x"}) == [1, 2]
    assert await s.field("lv") == "2"
    assert await s.sync(fence, None, drop=True, release=True) == [1, 3]
    assert await s.field("doc") is None and await s.field("lk") == "0"
    # a new service's late write, read before the drop, can never match again
    assert await s.cas(2, "zombie") == [0, 3]
    assert int((await s.acquire())[0]) > fence, "fences survive a drop"
