"""A service's Redis client: one server, a master behind Sentinel, or a Cluster.

The services touch one key per operation (a session record, read with
``HMGET`` and written with the compare-and-set script), so any topology
serves them; the key's ``{<sid>}`` hash tag (``adapters.store``) is what a
cluster routes on. Passwords come from the environment, never the command
line: ``STRANGLER_REDIS_PASSWORD`` (the data nodes) and
``STRANGLER_REDIS_SENTINEL_PASSWORD`` (the sentinels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, SlotNotCoveredError

RedisClient: TypeAlias = Redis | RedisCluster
HostPort: TypeAlias = tuple[str, int]

PASSWORD_ENV = "STRANGLER_REDIS_PASSWORD"  # noqa: S105 (a variable's name, not a secret)
SENTINEL_PASSWORD_ENV = "STRANGLER_REDIS_SENTINEL_PASSWORD"  # noqa: S105
CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class SentinelSpec:
    """``NAME@host:port,host:port``: the master's name and the sentinels to ask."""

    master_name: str
    nodes: tuple[HostPort, ...]

    def __str__(self) -> str:
        return f"{self.master_name}@{','.join(f'{h}:{p}' for h, p in self.nodes)}"


def parse_nodes(spec: str) -> tuple[HostPort, ...]:
    """``host:port,host:port`` -> ((host, port), ...); ValueError names the bad part."""
    nodes = []
    for part in spec.split(","):
        host, sep, port = part.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part.strip()!r}: expected host:port")
        nodes.append((host, int(port)))
    return tuple(nodes)


def parse_sentinel(spec: str) -> SentinelSpec:
    name, sep, nodes = spec.partition("@")
    if not sep or not name.strip():
        raise ValueError(f"{spec!r}: expected MASTER_NAME@host:port[,host:port...]")
    return SentinelSpec(name.strip(), parse_nodes(nodes))


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


def make_client(url: str | None = None, *, sentinel: SentinelSpec | None = None,
                cluster: tuple[HostPort, ...] = (), password: str | None = None,
                sentinel_password: str | None = None) -> RedisClient:
    """A client for one server (``url``), a master found through ``sentinel``, or a
    ``cluster``; does not connect until first used."""
    timeouts: dict[str, Any] = {"socket_connect_timeout": CONNECT_TIMEOUT_S,
                                "socket_timeout": SOCKET_TIMEOUT_S}
    if sentinel is not None and cluster:
        raise ValueError("redis: give a sentinel set-up or a cluster, not both")
    if sentinel is not None:
        manager = Sentinel(  # type: ignore[no-untyped-call]
            list(sentinel.nodes), sentinel_kwargs={**timeouts, "password": sentinel_password},
            password=password, **timeouts)
        client: Redis = manager.master_for(sentinel.master_name, redis_class=SentinelRedis)
        return client
    if cluster:
        return ClusterRedis(startup_nodes=[ClusterNode(h, p) for h, p in cluster],
                            password=password, **timeouts)
    if url is None:
        raise ValueError("redis: give a URL, a sentinel set-up or a cluster")
    return Redis.from_url(url, **timeouts)
