"""Runtime flag state in Redis, overlaying the defaults from config.yaml.

Keys (``prefix`` defaults to ``strangler``), hash-tagged alike so that a Redis
Cluster keeps them in one slot and the transactions below run on one node::

    {<prefix>:flags}:routes    hash  route -> RouteFlag JSON (runtime overrides)
    {<prefix>:flags}:kill      str   {"on": bool, "updated_by", "updated_at", "reason"}
    {<prefix>:flags}:version   int   bumped by every change
    {<prefix>:flags}:changed   pub/sub channel, published right after the change

A change is one MULTI/EXEC (write, bump), so a reader never sees a new version
without its data; the PUBLISH follows the EXEC (a cluster pipeline cannot carry
PUBLISH, which has no key; a cluster forwards it to every node). A lost message
costs nothing: readers also compare the version every poll interval. A runtime
override wins over config.yaml until it is reset; config.yaml is the
bootstrap, Redis the live truth.

Before the tags (v1) the keys were ``<prefix>:flags:routes`` and so on; a
single server or sentinel set-up still holding that layout is renamed on
first use (``_UPGRADE``), so an upgrade never drops the live stages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from flags.model import (
    FlagError,
    FlagState,
    RouteFlag,
    Stage,
    check_flip,
    moving_together,
)

log = structlog.get_logger("flags")

_UPGRADE = """
-- KEYS[1..3] v1 routes, kill, version; KEYS[4..6] the tagged ones
if redis.call('EXISTS', KEYS[6]) == 1 or redis.call('EXISTS', KEYS[3]) == 0 then
  return 0
end
for i = 1, 3 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('RENAME', KEYS[i], KEYS[i + 3]) end
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Change:
    """What a flip did: the flag before and after (``None`` for the kill switch)."""

    route: str | None
    before: RouteFlag | bool
    after: RouteFlag | bool
    version: int
    moved: tuple[str, ...] = ()
    """Every route this flip moved: the route and the rest of its group."""
    reason: str = ""


class FlagStore:
    """Reads and writes route flags and the kill switch in Redis."""

    def __init__(
        self,
        redis: aioredis.Redis | RedisCluster,
        defaults: Mapping[str, RouteFlag],
        *,
        prefix: str = "strangler",
        kill_default: bool = False,
        groups: Mapping[str, str] | None = None,
    ) -> None:
        self._redis = redis
        self._defaults = dict(defaults)
        self._groups = dict(groups or {})
        self._kill_default = kill_default
        tag = f"{{{prefix}:flags}}"
        self.routes_key = f"{tag}:routes"
        self.kill_key = f"{tag}:kill"
        self.version_key = f"{tag}:version"
        self.channel = f"{tag}:changed"
        self._v1_keys = [f"{prefix}:flags:{name}" for name in ("routes", "kill", "version")]
        self._upgraded = isinstance(redis, RedisCluster)  # v1 never ran on a cluster

    @property
    def defaults(self) -> Mapping[str, RouteFlag]:
        return self._defaults

    def default_state(self) -> FlagState:
        return FlagState(self._defaults, self._kill_default, 0, self._groups)

    async def version(self) -> int:
        raw = await self._redis.get(self.version_key)
        return int(raw or 0)

    async def _upgrade(self) -> None:
        """Adopt the v1 key layout once, atomically (any process may be first)."""
        if self._upgraded:
            return
        keys = [*self._v1_keys, self.routes_key, self.kill_key, self.version_key]
        if await self._redis.eval(_UPGRADE, len(keys), *keys):
            log.info("flags_keys_upgraded", keys=self._v1_keys)
        self._upgraded = True

    async def load(self) -> FlagState:
        await self._upgrade()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.routes_key)
            pipe.get(self.kill_key)
            pipe.get(self.version_key)
            stored, kill_raw, version = await pipe.execute()
        routes = dict(self._defaults)
        for name_b, raw in stored.items():
            name = name_b.decode() if isinstance(name_b, bytes) else name_b
            if name not in routes:
                continue  # a route removed from config.yaml: its override is moot
            try:
                routes[name] = RouteFlag.from_dict(json.loads(raw))
            except (FlagError, ValueError, TypeError) as exc:
                log.error("flag_override_ignored", route=name, reason=str(exc))
        kill = self._kill_default
        if kill_raw:
            kill = bool(json.loads(kill_raw).get("on", False))
        return FlagState(routes, kill, int(version or 0), self._groups)

    async def set_route(
        self, route: str, stage: Stage, percent: int | None, *, actor: str, reason: str = ""
    ) -> Change:
        """Move ``route`` -- and the rest of its group, in the same transaction."""
        pct = check_flip(route, stage, percent, self._defaults)
        before = (await self.load()).routes[route]
        after = RouteFlag(stage, pct, actor, time.time(), reason)
        moved = moving_together(route, self._groups)
        version = await self._commit(
            lambda p: p.hset(self.routes_key, mapping={r: _dump(after) for r in moved}))
        return Change(route, before, after, version, moved, reason)

    async def set_kill(self, on: bool, *, actor: str, reason: str = "") -> Change:
        before = (await self.load()).kill_switch
        doc = {"on": on, "updated_by": actor, "updated_at": time.time(), "reason": reason}
        version = await self._commit(lambda p: p.set(self.kill_key, json.dumps(doc)))
        return Change(None, before, on, version, (), reason)

    async def reset(self) -> int:
        """Drop every runtime override: config.yaml's stages apply again."""
        return await self._commit(lambda p: p.delete(self.routes_key, self.kill_key))

    async def _commit(self, write: Any) -> int:
        await self._upgrade()
        async with self._redis.pipeline(transaction=True) as pipe:
            write(pipe)
            pipe.incr(self.version_key)
            results = await pipe.execute()
        try:
            await self._redis.publish(self.channel, "changed")
        except (RedisError, OSError) as exc:  # applied all the same; readers poll the version
            log.warning("flags_publish_failed", reason=f"{type(exc).__name__}: {exc}")
        return int(results[-1])


def _dump(flag: RouteFlag) -> str:
    return json.dumps(flag.to_dict(), separators=(",", ":"))
