"""The gateway's Redis client, built from the ``redis`` section of config.yaml.

Three topologies, one client type to the rest of the gateway:

- ``url``: a single server (``redis.asyncio.Redis``).
- ``sentinel``: the master named by the sentinels (redis-py ``Sentinel.master_for``).
  After a failover its pool asks the sentinels again and reconnects to the
  new master by itself; commands in flight meanwhile fail like any Redis error
  (the session store degrades, then recovers on its own ping).
- ``cluster``: ``RedisCluster``. Every multi-key operation of ours stays in one
  hash slot: a session record and its lock share the ``{<sid>}`` tag
  (``adapters.store``); the flag keys share ``{<prefix>:flags}`` so their
  MULTI/EXEC runs on one node (``flags.store``); a pin set is one key per route.

Nothing connects here: the first command does.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, SlotNotCoveredError

from gateway.settings import ConfigError, RedisSection, Secret

RedisClient: TypeAlias = Redis | RedisCluster


class ClusterRedis(RedisCluster):
    """``RedisCluster`` whose outages are ``RedisError``s, as every other topology's are.

    redis-py raises ``RedisClusterException``, which is no ``RedisError``, when no
    startup node answers or a slot has no node; the callers, which degrade on a
    ``RedisError``, would fail instead. Mapped here, at the boundary.
    """

    async def initialize(self, additional_startup_nodes_info: list[tuple[str, int]] | None = None,
                         last_failed_node_name: str | None = None) -> ClusterRedis:
        try:
            await super().initialize(additional_startup_nodes_info, last_failed_node_name)
        except RedisClusterException as exc:
            raise RedisConnectionError(f"Redis Cluster unavailable: {exc}") from exc
        return self

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except SlotNotCoveredError as exc:
            raise RedisConnectionError(f"Redis Cluster unavailable: {exc}") from exc


class SentinelRedis(Redis):
    """``master_for``'s client that, when closed, also closes its sentinel connections."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        pool = self.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            for sentinel in pool.sentinel_manager.sentinels:
                await sentinel.aclose()


def make_redis(section: RedisSection, *, timeout_s: float | None = None) -> RedisClient:
    """The client for whichever topology ``section`` names (``url`` if none of them)."""
    timeout = section.timeout_ms / 1000 if timeout_s is None else timeout_s
    common: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                              "max_connections": section.max_connections}
    if section.sentinel is not None:
        s = section.sentinel
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            [host_port(n) for n in s.nodes],
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout,
                             "password": secret_value(s.sentinel_password,
                                                            "redis.sentinel.sentinel_password")},
            password=secret_value(s.password, "redis.sentinel.password"), health_check_interval=0,
            **common)
        client: Redis = sentinel.master_for(s.master_name, redis_class=SentinelRedis)
        return client
    if section.cluster is not None:
        c = section.cluster
        return ClusterRedis(startup_nodes=[ClusterNode(*host_port(n)) for n in c.nodes],
                            password=secret_value(c.password, "redis.cluster.password"), **common)
    if not section.url:
        raise ConfigError("redis: give url, sentinel or cluster")
    return Redis.from_url(section.url, health_check_interval=0, **common)


def describe(section: RedisSection) -> str:
    """Where the client connects, for messages (never a password)."""
    if section.sentinel is not None:
        return f"sentinel {section.sentinel.master_name}@{','.join(section.sentinel.nodes)}"
    if section.cluster is not None:
        return f"cluster {','.join(section.cluster.nodes)}"
    url = section.url or "(none)"
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url


def host_port(node: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too), as ``settings`` validated it."""
    host, _, port = node.rpartition(":")
    return host.strip("[]"), int(port)


def secret_value(secret: Secret | None, where: str) -> str | None:
    """The secret's value; ConfigError naming ``where`` if it is named but not found."""
    if secret is None:
        return None
    value = secret.read()
    if not value:
        found = " or ".join(w for w in (secret.env and f"${secret.env}",
                                        secret.file and str(secret.file)) if w)
        raise ConfigError(f"{where}: no secret found in {found or '(nothing named)'}")
    return value
