"""The local flag provider against a real Redis: flips propagate, outages degrade."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from flags import FlagError, RouteFlag, Stage, UnknownRoute
from flags.local import LocalProvider
from flags.store import FlagStore
from tests.support.net import await_until
from tests.support.redis_proc import PrivateRedis

DEFAULTS = {"catalog": RouteFlag(Stage.LEGACY), "cart": RouteFlag(Stage.CANARY, 10)}


@pytest.fixture
async def provider(redis_url: str, key_prefix: str,
                   redis_client: aioredis.Redis) -> AsyncIterator[LocalProvider]:
    client = aioredis.Redis.from_url(redis_url)
    p = LocalProvider(client, DEFAULTS, prefix=key_prefix, poll_interval=0.5)
    await p.start()
    yield p
    await p.stop()
    await client.aclose()


async def test_defaults_apply_until_something_is_flipped(provider: LocalProvider) -> None:
    assert provider.healthy
    assert provider.view.flag("cart") == RouteFlag(Stage.CANARY, 10)
    assert not provider.view.kill_switch


async def test_a_flip_by_another_process_arrives_within_a_second(
        provider: LocalProvider, redis_client: aioredis.Redis, key_prefix: str) -> None:
    other = FlagStore(redis_client, DEFAULTS, prefix=key_prefix)
    seen: list[int] = []
    provider.subscribe(lambda view: seen.append(view.state.version))
    change = await other.set_route("catalog", Stage.NEW, None, actor="test", reason="go")
    await await_until(lambda: _eq(provider.view.flag("catalog").stage, Stage.NEW),
                      timeout=1.0, what="flip to reach the provider")
    flag = provider.view.flag("catalog")
    assert flag.updated_by == "test" and flag.reason == "go" and flag.percent == 100
    assert seen and seen[-1] == change.version
    await other.set_kill(True, actor="test")
    await await_until(lambda: _eq(provider.view.kill_switch, True), timeout=1.0,
                      what="kill switch to reach the provider")


async def test_bad_flips_are_refused(provider: LocalProvider) -> None:
    with pytest.raises(UnknownRoute):
        await provider.set_route("nope", Stage.NEW, None, actor="t")
    with pytest.raises(FlagError):
        await provider.set_route("cart", Stage.CANARY, None, actor="t")
    with pytest.raises(FlagError):
        await provider.set_route("cart", Stage.CANARY, 101, actor="t")
    with pytest.raises(FlagError):
        await provider.set_route("cart", Stage.LEGACY, 40, actor="t")
    assert provider.view.flag("cart") == RouteFlag(Stage.CANARY, 10)


async def test_overrides_for_routes_no_longer_configured_are_ignored(
        redis_client: aioredis.Redis, key_prefix: str) -> None:
    wide = FlagStore(redis_client, {**DEFAULTS, "gone": RouteFlag(Stage.LEGACY)},
                     prefix=key_prefix)
    await wide.set_route("gone", Stage.NEW, None, actor="t")
    narrow = FlagStore(redis_client, DEFAULTS, prefix=key_prefix)
    assert set((await narrow.load()).routes) == {"catalog", "cart"}


async def test_redis_outage_keeps_the_last_view_and_recovers_by_itself(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path / "redis").start()
    client = aioredis.Redis.from_url(server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    p = LocalProvider(client, DEFAULTS, poll_interval=0.2)
    try:
        await p.start()
        await p.set_route("catalog", Stage.NEW, None, actor="t")
        server.stop()
        await await_until(lambda: _eq(p.healthy, False), timeout=5, what="outage noticed")
        assert p.view.flag("catalog").stage is Stage.NEW, "the last known flags keep serving"
        server.start()  # restarted empty: config defaults apply again
        await await_until(lambda: _eq(p.healthy, True), timeout=10, what="recovery")
        writer = FlagStore(client, DEFAULTS)
        await writer.set_route("cart", Stage.NEW, None, actor="t")
        await await_until(lambda: _eq(p.view.flag("cart").stage, Stage.NEW), timeout=2,
                          what="flips after recovery")
    finally:
        await p.stop()
        await client.aclose()
        server.stop()


async def _eq(value: object, expected: object) -> bool:
    return value == expected
