"""'Once migrated, stay migrated': sessions pinned to new per route.

A route with ``pin: true`` records every session it serves from new in a
Redis set; while the route is in canary, a pinned session stays on new even
when the percentage is lowered. Pins are undone explicitly: moving the route
back to legacy clears them (``FlagService``), and ``unpin`` clears them
without a stage change.

Reads are memoised per flag version by the caller: within one version the
answer for a session cannot change (a session is pinned only when served by
new, and at one version every process computes the same canary buckets).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster


class Pins:
    def __init__(self, redis: aioredis.Redis | RedisCluster, prefix: str = "strangler") -> None:
        self._redis = redis
        self._prefix = prefix

    def key(self, route: str) -> str:
        return f"{self._prefix}:pins:{route}"

    async def add(self, route: str, sid: str) -> None:
        await self._redis.sadd(self.key(route), sid)

    async def has(self, route: str, sid: str) -> bool:
        return bool(await self._redis.sismember(self.key(route), sid))

    async def count(self, route: str) -> int:
        return int(await self._redis.scard(self.key(route)))

    async def clear(self, route: str) -> int:
        """Drop every pin of ``route``; returns how many there were."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.scard(self.key(route))
            pipe.delete(self.key(route))
            count, _ = await pipe.execute()
        return int(count)
