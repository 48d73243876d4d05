"""New services write a session exactly once, even across a Redis that hangs.

A write sent to a Redis that is paused (SIGSTOP) sits in its socket and runs
when Redis wakes, long after the client timed out. Sent again blindly, it would
be applied twice; given up on with a 503, the user would be told "not done"
about something that was done. With op ids the service keeps asking until
Redis says what happened, and a 503 only ever means "nothing was written".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from adapters.claims import Identity
from adapters.document import Document
from adapters.handles import session_handle
from new_services.shop_session import ShopSession, ShopUser
from strangler_sdk.errors import OutcomeUnknown
from strangler_sdk.sessions import SharedSessions as SessionStore
from tests.support.keys import SESSION_KEY
from tests.support.redis_proc import PrivateRedis


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.resume()
    server.stop()


@pytest.fixture
async def client(private_redis: PrivateRedis) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(private_redis.url, socket_timeout=0.2,
                                    socket_connect_timeout=0.2)
    yield redis
    await redis.aclose()


def shop(change: Callable[[ShopSession], ShopSession]) -> Callable[[Document], Document]:
    """A change of the shop's session as a change of the document."""
    return lambda doc: change(ShopSession.from_document(doc)).to_document()


def cart(doc: Document | None) -> dict[int, int]:
    assert doc is not None
    return dict(ShopSession.from_document(doc).cart)


async def _session(store: SessionStore) -> Identity:
    sid = await store.create(ShopSession(ShopUser(7, "alice"), {3: 1}).to_document())
    return Identity(session_handle(SESSION_KEY, sid), "7", "alice")


async def test_a_write_that_ran_after_its_timeout_is_not_applied_again(
        client: aioredis.Redis, private_redis: PrivateRedis) -> None:
    store = SessionStore(client, prefix="x1", ttl_s=60, cas_attempts=5,
                         handle_key=SESSION_KEY, write_budget_s=10)
    who = await _session(store)
    first = await store.read_owned(who)
    assert first is not None
    private_redis.pause()
    write = asyncio.create_task(
        store.update(who, shop(lambda s: s.with_item(3, 2)), first=first))
    await asyncio.sleep(0.6)  # the fault's length: the write and a retry sit in Redis
    assert not write.done(), "a write with no answer is not given up on while in budget"
    private_redis.resume()
    assert cart(await write) == {3: 3}
    stored = await store.read_owned(who)
    assert stored is not None and cart(stored.doc) == {3: 3}, "applied exactly once"


async def test_a_hang_longer_than_the_budget_is_an_unknown_outcome_not_a_503(
        client: aioredis.Redis, private_redis: PrivateRedis) -> None:
    store = SessionStore(client, prefix="x2", ttl_s=60, cas_attempts=5,
                         handle_key=SESSION_KEY, write_budget_s=0.5)
    who = await _session(store)
    first = await store.read_owned(who)
    private_redis.pause()
    with pytest.raises(OutcomeUnknown):
        await store.update(who, shop(lambda s: s.with_item(5, 1)), first=first)
    private_redis.resume()
    stored = await store.read_owned(who)
    assert stored is not None and cart(stored.doc) in ({3: 1}, {3: 1, 5: 1})


async def test_a_read_that_fails_means_nothing_was_written(
        client: aioredis.Redis, private_redis: PrivateRedis) -> None:
    store = SessionStore(client, prefix="x3", ttl_s=60, cas_attempts=5,
                         handle_key=SESSION_KEY, write_budget_s=5)
    who = await _session(store)
    private_redis.pause()
    with pytest.raises(RedisError):  # the service answers 503 + Retry-After for this
        await store.update(who, shop(lambda s: s.with_item(5, 1)))
    private_redis.resume()
    stored = await store.read_owned(who)
    assert stored is not None and cart(stored.doc) == {3: 1}


async def test_an_order_is_settled_once_on_the_cart(client: aioredis.Redis) -> None:
    store = SessionStore(client, prefix="x4", ttl_s=60, cas_attempts=5, handle_key=SESSION_KEY)
    who = await _session(store)
    for _ in range(3):  # the first answer, then two replays
        await store.update(who, shop(lambda s: s.settle(41, {3: 1})), op="settle-41")
    stored = await store.read_owned(who)
    assert stored is not None and cart(stored.doc) == {}
    assert ShopSession.from_document(stored.doc).settled == (41,)
