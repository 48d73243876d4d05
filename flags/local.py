"""The local flag provider: config.yaml defaults + runtime state in Redis.

Every gateway process keeps a ``FlagView`` of the current state. A change
anywhere (admin API, CLI, another gateway) is published on a Redis channel;
the provider rebuilds its view on the message and, as a safety net for a
lost message or a reconnect, also compares the version key every
``poll_interval`` seconds. Either way a flip reaches every process well
within a second.

If Redis is unreachable the provider keeps the last view it had (or the
config defaults at start), reports ``healthy = False`` and reconnects by
itself with capped backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from flags.model import RouteFlag, Stage
from flags.store import Change, FlagStore
from flags.view import FlagView

log = structlog.get_logger("flags")

Listener = Callable[[FlagView], None]


class LocalProvider:
    """Keeps ``view`` current; ``set_route``/``set_kill`` write through Redis."""

    def __init__(
        self,
        redis: aioredis.Redis | RedisCluster,
        defaults: Mapping[str, RouteFlag],
        *,
        prefix: str = "strangler",
        kill_default: bool = False,
        app_name: str = "strangler-gateway",
        poll_interval: float = 0.5,
        groups: Mapping[str, str] | None = None,
    ) -> None:
        self.store = FlagStore(redis, defaults, prefix=prefix, kill_default=kill_default,
                               groups=groups)
        self._redis = redis
        self._app_name = app_name
        self._poll = poll_interval
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.view = FlagView(self.store.default_state(), app_name)
        self.healthy = False

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(view)`` after every change of view."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Load the stored state (if Redis answers) and start following changes."""
        with contextlib.suppress(RedisError, OSError):
            await self.refresh()
        self._task = asyncio.create_task(self._follow(), name="flags-follow")

    async def stop(self) -> None:
        # A flag, not only cancel(): a cancellation that lands inside redis-py's
        # connection handling can surface as a ConnectionError, which the
        # reconnect loop would otherwise treat as an outage and retry.
        self._stopping = True
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> bool:
        """Reload from Redis; rebuild the view if the version moved. True if it did."""
        state = await self.store.load()
        self._set_healthy(True)
        if state.version == self.view.state.version and self.view.state.version != 0:
            return False
        if state == self.view.state:
            return False
        self.view = FlagView(state, self._app_name)
        log.info("flags_changed", version=state.version, kill_switch=state.kill_switch,
                 routes={r: f"{f.stage.value}:{f.percent}" for r, f in state.routes.items()})
        for listener in self._listeners:
            listener(self.view)
        return True

    async def set_route(
        self, route: str, stage: Stage, percent: int | None, *, actor: str, reason: str = ""
    ) -> Change:
        change = await self.store.set_route(route, stage, percent, actor=actor, reason=reason)
        await self.refresh()
        return change

    async def set_kill(self, on: bool, *, actor: str, reason: str = "") -> Change:
        change = await self.store.set_kill(on, actor=actor, reason=reason)
        await self.refresh()
        return change

    async def _follow(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                if self._stopping:
                    return
                self._set_healthy(False, str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            else:
                backoff = 0.1

    async def _listen(self) -> None:
        # A cluster client subscribes on the node its slot map names for the channel:
        # a first command builds that map (or fails as any outage does) -- without it,
        # redis-py's cluster pub/sub dies on a KeyError instead.
        await self.store.version()
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.store.channel)
            await self.refresh()
            while not self._stopping:
                await pubsub.get_message(timeout=self._poll)
                # A message, or a quiet poll interval: either way compare versions,
                # which also catches a change published while we were reconnecting.
                if await self.store.version() != self.view.state.version:
                    await self.refresh()
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _set_healthy(self, healthy: bool, reason: str = "") -> None:
        if healthy != self.healthy:
            if healthy:
                log.info("flags_store_up")
            else:
                log.warning("flags_store_down", reason=reason)
        self.healthy = healthy
