"""The gateway's session store on a real Redis: overload is not an outage."""

from __future__ import annotations

import asyncio
import secrets

import pytest
import redis.asyncio as aioredis

from gateway.session.store import SessionStore, StoreBusy, StoreUnavailable
from tests.support.keys import SESSION_KEY
from tests.support.net import await_until


async def test_a_full_pool_refuses_requests_but_is_never_an_outage(
        redis_client: aioredis.Redis, key_prefix: str) -> None:
    store = SessionStore(redis_client, key_prefix, 60, handle_key=SESSION_KEY, max_in_flight=1,
                         pool_wait_s=0.001)
    outcomes = await asyncio.gather(*(store.read(secrets.token_urlsafe(20)) for _ in range(60)),
                                    return_exceptions=True)
    busy = [o for o in outcomes if isinstance(o, StoreBusy)]
    assert busy, "sixty reads through one connection with a 1 ms wait: some must be refused"
    assert all(o is None or isinstance(o, StoreBusy) for o in outcomes), outcomes
    assert store.up, "a full pool is overload, not Redis being down"
    await store.stop()


async def test_a_redis_that_refuses_connections_is_down_and_a_probe_brings_it_back(
        key_prefix: str) -> None:
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    store = SessionStore(dead, key_prefix, 60, handle_key=SESSION_KEY)
    with pytest.raises(StoreUnavailable):
        await store.read(secrets.token_urlsafe(20))
    assert not store.up
    await store.stop()
    await dead.aclose()


async def test_the_watch_notices_a_dead_redis_without_traffic(key_prefix: str) -> None:
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    store = SessionStore(dead, key_prefix, 60, handle_key=SESSION_KEY)
    watch = asyncio.create_task(store.watch(interval_s=0.05))
    try:
        await await_until(lambda: _down(store), timeout=5, what="the watch to mark Redis down")
    finally:
        watch.cancel()
        await store.stop()
        await dead.aclose()


async def _down(store: SessionStore) -> bool:
    return not store.up
