"""The session bridge against real monolith nodes and a real Redis.

Two ``legacy_shop`` nodes run in-process on loopback; the bridge talks to them
over HTTP through their session-export hook, and to Redis with its scripts.
New-service writes are made exactly as ``new_services`` makes them: a
compare-and-set through ``adapters.store.WRITE_SCRIPT``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from adapters.document import Document
from adapters.handles import session_handle
from adapters.profile import build
from adapters.store import WRITE_SCRIPT, write_args
from adapters.wire import SESSION_ID_HEADER, SESSION_REV_HEADER
from gateway.observe.metrics import Metrics
from gateway.session.bridge import (
    LegacyPlan,
    SessionBridge,
    SessionUnavailable,
    SessionUnbridgeable,
)
from gateway.session.hook import LegacyHook
from gateway.session.store import LockLost, SessionStore
from gateway.session.sync import Intent
from gateway.session.tokens import TokenMinter
from gateway.settings import TokensSection
from gateway.upstream.client import ClientLimits, Clients, HttpUpstream
from gateway.upstream.pools import LegacyPool
from legacy_shop.app import create_app
from legacy_shop.settings import Settings
from new_services.shop_session import ShopSession
from tests.support.keys import SESSION_KEY, KeyPair
from tests.support.net import await_until
from tests.support.profiles import shop_profile, shop_session

SHOP = shop_profile()


def shop(raw: str | bytes) -> ShopSession:
    return ShopSession.from_document(Document.from_json(raw))


@dataclass
class World:
    bridge: SessionBridge
    pool: LegacyPool
    store: SessionStore
    redis: aioredis.Redis
    servers: dict[str, TestServer]
    http: aiohttp.ClientSession
    prefix: str
    token: str

    def node_url(self, node: str) -> str:
        return str(self.servers[node].make_url("")).rstrip("/")

    async def login_on(self, node: str, username: str = "alice") -> str:
        async with self.http.post(f"{self.node_url(node)}/login",
                                  json={"username": username, "password": "wonderland"}) as r:
            assert r.status == 200, f"login as {username} on {node} failed: {await r.text()}"
            return r.cookies["shop_session"].value

    async def on_node(self, node: str, method: str, path: str, sid: str,
                      body: object = None) -> tuple[int, dict[str, object], CIMultiDict[str]]:
        async with self.http.request(method, self.node_url(node) + path, json=body,
                                     cookies={"shop_session": sid}) as r:
            return r.status, await r.json(), CIMultiDict(r.headers)

    async def add_on_node(self, node: str, sid: str, product_id: int, qty: int) -> None:
        """A cart add on a node, made to prepare a state: a failure fails the test here."""
        status, body, _ = await self.on_node(node, "POST", "/api/cart/items", sid,
                                             {"product_id": product_id, "qty": qty})
        assert status == 200, f"adding product {product_id} on {node} failed: {status} {body}"

    async def node_cart(self, node: str, sid: str) -> dict[int, int]:
        status, body, _ = await self.on_node(node, "GET", "/api/cart", sid)
        assert status == 200, body
        return {i["product_id"]: i["qty"] for i in body["items"]}  # type: ignore[index]

    async def new_writes(self, sid: str, change: object) -> None:
        """Write the shared document the way a new service does (CAS on v)."""
        script = self.redis.register_script(WRITE_SCRIPT)
        key = self.store.key(sid)
        doc_raw, v = await self.redis.hmget(key, ["doc", "v"])
        doc = change(shop(doc_raw))  # type: ignore[operator]
        raw = doc.to_document().to_json()
        ok, _ = await script(keys=[key], args=write_args(int(v), 3600, bump=True, set_lv=False,
                                                         fields={"doc": raw}))
        assert ok == 1

    async def record(self, sid: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.store.key(sid))
        return {k.decode(): v.decode() for k, v in raw.items()}


@pytest.fixture
async def world(tmp_path: Path, redis_url: str, key_prefix: str, internal_token: str,
                keypair: KeyPair) -> AsyncIterator[World]:
    db = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    servers = {}
    for node in ("a", "b"):
        app = create_app(Settings(node_id=node, database_url=db, internal_token=internal_token))
        servers[node] = TestServer(app, host="127.0.0.1")
        await servers[node].start_server()
    limits = ClientLimits(connect_s=0.5, read_s=5)
    clients = Clients()
    pool = LegacyPool("legacy", [HttpUpstream(n, str(s.make_url("")), clients, limits)
                                 for n, s in servers.items()], "/healthz")
    await pool.check_all()
    client = aioredis.Redis.from_url(redis_url)
    store = SessionStore(client, key_prefix, 3600, handle_key=SESSION_KEY)
    minter = TokenMinter(TokensSection(), keypair.private_key)
    bridge = SessionBridge(store, pool, LegacyHook(internal_token, SHOP), minter,
                           Metrics(), SHOP)
    test_http = aiohttp.ClientSession()
    try:
        yield World(bridge, pool, store, client, servers, test_http, key_prefix, internal_token)
    finally:
        await test_http.close()
        await clients.close()
        for s in servers.values():
            await s.close()
        async for key in client.scan_iter(match=f"{key_prefix}:*"):
            await client.delete(key)
        await client.aclose()


async def test_first_sight_pulls_the_session_from_its_node(world: World) -> None:
    sid = await world.login_on("a")
    await world.add_on_node("a", sid, 4, 2)
    plan = await world.bridge.before_legacy(sid, hint="a", rid="t")
    assert plan.member.id == "a"
    rec = await world.record(sid)
    assert rec["node"].startswith("a@") and rec["v"] == rec["lv"] == "1"
    doc = shop(rec["doc"])
    assert doc.user is not None and doc.user.username == "alice"
    assert dict(doc.cart) == {4: 2}
    assert doc.doc.extra, "legacy-only keys are carried along"


async def test_a_write_on_new_is_pushed_before_the_next_legacy_request(world: World) -> None:
    sid = await world.login_on("a")
    await world.bridge.before_legacy(sid, "a", "t")
    await world.new_writes(sid, lambda d: d.with_item(7, 3))
    plan = await world.bridge.before_legacy(sid, "a", "t")
    assert plan.member.id == "a"
    assert await world.node_cart("a", sid) == {7: 3}
    rec = await world.record(sid)
    assert rec["v"] == rec["lv"]


async def test_a_change_on_legacy_is_pulled_before_the_response(world: World) -> None:
    sid = await world.login_on("a")
    plan = await world.bridge.before_legacy(sid, "a", "t")
    status, _, headers = await world.on_node("a", "POST", "/api/cart/items", sid,
                                             {"product_id": 2, "qty": 1})
    assert status == 200
    after = await world.bridge.after_legacy(plan, status, "POST", headers, "t")
    assert not after.retry and after.sync_cookie is not None
    doc = shop((await world.record(sid))["doc"])
    assert dict(doc.cart) == {2: 1}
    token, _ = await world.bridge.token_for_new(sid, "a", "t")
    assert token is not None


async def test_concurrent_changes_on_both_sides_are_merged_not_lost(world: World) -> None:
    sid = await world.login_on("a")
    await world.add_on_node("a", sid, 1, 1)
    plan = await world.bridge.before_legacy(sid, "a", "t")
    # new adds product 5 while a legacy request adds more of product 1
    await world.new_writes(sid, lambda d: d.with_item(5, 2))
    status, _, headers = await world.on_node("a", "POST", "/api/cart/items", sid,
                                             {"product_id": 1, "qty": 1})
    await world.bridge.after_legacy(plan, status, "POST", headers, "t")
    doc = shop((await world.record(sid))["doc"])
    assert dict(doc.cart) == {1: 2, 5: 2}
    # the merged document reaches legacy before it serves the session again
    await world.bridge.before_legacy(sid, "a", "t")
    assert await world.node_cart("a", sid) == {1: 2, 5: 2}


async def test_a_dead_node_s_sessions_are_rehydrated_on_another(world: World) -> None:
    sid = await world.login_on("a", "bob")
    await world.add_on_node("a", sid, 9, 1)
    await world.bridge.before_legacy(sid, "a", "t")
    await world.servers["a"].close()
    world.pool.mark_down("a", "test")
    plan = await world.bridge.before_legacy(sid, "a", "t")
    assert plan.member.id == "b"
    status, body, _ = await world.on_node("b", "GET", "/api/me", sid)
    assert status == 200 and body["user"]["username"] == "bob"  # type: ignore[index]
    assert await world.node_cart("b", sid) == {9: 1}
    assert (await world.record(sid))["node"].startswith("b@")


async def test_a_node_that_forgot_the_session_is_refilled_and_asked_again(world: World) -> None:
    sid = await world.login_on("a", "carol")
    plan = await world.bridge.before_legacy(sid, "a", "t")
    async with world.http.delete(f"{world.node_url('a')}/_internal/sessions/{sid}",
                                 headers={"X-Internal-Token": world.token}) as forgot:
        assert forgot.status == 204, f"the node kept the session: {await forgot.text()}"
    status, _, headers = await world.on_node("a", "GET", "/api/cart", sid)
    assert status == 401 and headers[SESSION_REV_HEADER] == "0"
    assert (await world.bridge.after_legacy(plan, status, "GET", headers, "t")).retry
    status, body, _ = await world.on_node("a", "GET", "/api/me", sid)
    assert status == 200 and body["user"]["username"] == "carol"  # type: ignore[index]


async def test_logout_on_legacy_ends_the_shared_session(world: World) -> None:
    sid = await world.login_on("a")
    plan = await world.bridge.before_legacy(sid, "a", "t")
    assert (await world.bridge.token_for_new(sid, "a", "t"))[0] is not None
    status, _, headers = await world.on_node("a", "POST", "/logout", sid)
    assert headers[SESSION_ID_HEADER] == sid and headers[SESSION_REV_HEADER] == "0"
    await world.bridge.after_legacy(plan, status, "POST", headers, "t")
    assert "doc" not in await world.record(sid)
    assert (await world.bridge.token_for_new(sid, "a", "t"))[0] is None


async def test_login_on_legacy_replaces_the_old_shared_session(world: World) -> None:
    old = await world.login_on("a")
    plan = await world.bridge.before_legacy(old, "a", "t")
    async with world.http.post(f"{world.node_url('a')}/login", cookies={"shop_session": old},
                               json={"username": "dave", "password": "wonderland"}) as r:
        headers = CIMultiDict(r.headers)
        new = r.cookies["shop_session"].value
    assert new != old and headers[SESSION_ID_HEADER] == new
    await world.bridge.after_legacy(plan, 200, "POST", headers, "t")
    assert "doc" not in await world.record(old)
    doc = json.loads((await world.record(new))["doc"])
    assert doc["user"]["name"] == "dave"


async def test_redis_down_serves_a_session_only_where_its_latest_state_provably_is(
        world: World, key_prefix: str) -> None:
    known_sid = await world.login_on("b")
    token = (await world.bridge.before_legacy(known_sid, "b", "t")).sync_cookie
    other_sid = await world.login_on("b", "bob")
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    dead_store = SessionStore(dead, key_prefix, 3600, handle_key=SESSION_KEY)
    bridge = SessionBridge(dead_store, world.pool, world.bridge.hook,
                           world.bridge.minter, Metrics(), SHOP)
    bridge.known = world.bridge.known  # what this process learnt before Redis went away
    with pytest.raises(SessionUnavailable):
        await bridge.before_legacy(other_sid, "b", "t")  # nothing proves b holds the latest
    assert not bridge.store.up
    plan = await bridge.before_legacy(known_sid, "b", "t", token)
    assert plan.member.id == "b"
    with pytest.raises(SessionUnavailable):
        await bridge.before_legacy(known_sid, "b", "t", "a-token-from-elsewhere")
    # legacy changes it meanwhile: the node is now ahead, and says so in a dirty token
    status, _, headers = await world.on_node("b", "POST", "/api/cart/items", known_sid,
                                             {"product_id": 3, "qty": 1})
    after = await bridge.after_legacy(plan, status, "POST", headers, "t")
    assert after.sync_cookie is not None and after.sync_cookie.startswith(".")
    again = await bridge.before_legacy(known_sid, "b", "t", after.sync_cookie)
    assert again.member.id == "b", "the node that is ahead keeps serving it"
    await bridge.store.stop()
    await dead.aclose()
    # Redis answers again: any process that sees the dirty token resyncs first
    token_new, fresh = await world.bridge.token_for_new(known_sid, "b", "t", after.sync_cookie)
    assert token_new is not None and fresh is not None and not fresh.startswith(".")
    doc = shop((await world.record(known_sid))["doc"])
    assert dict(doc.cart) == {3: 1}, "what legacy did during the outage reached the store"


class CountingReads:
    """Counts the bridge's record reads (the Redis HMGET of the fast path)."""

    def __init__(self, world: World) -> None:
        self.count = 0
        real = world.store.read

        async def read(sid: str):  # type: ignore[no-untyped-def]
            self.count += 1
            return await real(sid)

        world.store.read = read  # type: ignore[method-assign]


async def test_a_client_in_sync_costs_no_redis_round_trip(world: World) -> None:
    sid = await world.login_on("a")
    reads = CountingReads(world)
    first = await world.bridge.before_legacy(sid, "a", "t")
    assert first.sync_cookie is not None and reads.count >= 1
    before = reads.count
    for _ in range(5):
        plan = await world.bridge.before_legacy(sid, "a", "t", first.sync_cookie)
        assert plan.member.id == "a" and plan.sync_cookie is None
    assert reads.count == before, "a client presenting its sync token is served from memory"
    await world.bridge.before_legacy(sid, "a", "t", "some-other-token")
    assert reads.count == before + 1, "an unknown token means: read the record"


async def test_a_possible_change_on_new_is_never_missed(world: World) -> None:
    sid = await world.login_on("a")
    token = (await world.bridge.before_legacy(sid, "a", "t")).sync_cookie
    renewed = world.bridge.may_change_on_new(sid)  # a POST is routed to new ...
    await world.new_writes(sid, lambda d: d.with_item(6, 1))  # ... and new writes
    assert renewed != token
    await world.bridge.before_legacy(sid, "a", "t", renewed)  # the client's next request
    assert await world.node_cart("a", sid) == {6: 1}, "the write on new reached legacy first"
    # and a client still presenting the old token (a process that never saw the
    # renewal) reads the record too: the old entry was forgotten
    reads = CountingReads(world)
    await world.bridge.before_legacy(sid, "a", "t", token)
    assert reads.count >= 1


async def test_a_change_on_legacy_makes_the_next_request_read_the_record(world: World) -> None:
    sid = await world.login_on("a")
    token = (await world.bridge.before_legacy(sid, "a", "t")).sync_cookie
    plan = await world.bridge.before_legacy(sid, "a", "t", token)
    status, _, headers = await world.on_node("a", "POST", "/api/cart/items", sid,
                                             {"product_id": 2, "qty": 1})
    await world.bridge.after_legacy(plan, status, "POST", headers, "t")
    reads = CountingReads(world)
    await world.bridge.before_legacy(sid, "a", "t", token)
    assert reads.count == 1
    doc = shop((await world.record(sid))["doc"])
    assert dict(doc.cart) == {2: 1}


async def test_a_stalled_holders_push_that_landed_unrecorded_is_never_merged_twice(
        world: World, key_prefix: str) -> None:
    """A holder pushed new's write into node a and stalled before recording it; its
    lease ran out. Legacy then changed the session. The next pull must see the push
    for what it was (the node reports its fence, the record kept the intent)."""
    sid = await world.login_on("a")
    await world.bridge.before_legacy(sid, "a", "t")
    await world.new_writes(sid, lambda d: d.with_item(5, 1))
    stalled = SessionStore(world.redis, key_prefix, 3600, handle_key=SESSION_KEY, lease_ms=150)
    loop = asyncio.get_running_loop()
    lease, rec = await stalled.acquire(sid, loop.time() + 5)
    assert rec is not None and rec.v == 2 and rec.lv == 1
    intent = Intent(lease.fence, rec.v, rec.node_field, rec.doc_raw.decode())
    await stalled.write(lease, None, fields={"pi": intent.to_json()})
    member = world.pool.members["a"]
    landed = await world.bridge.hook.import_(member.upstream, sid, rec.doc, rec.lrev, "t",
                                             fence=lease.fence)
    assert landed.ok  # ... and here the holder stalls: nothing recorded
    await await_until(lambda: _lease_over(world, key_prefix, sid), timeout=5,
                      what="the stalled holder's lease to run out")
    status, _, headers = await world.on_node("a", "POST", "/api/cart/items", sid,
                                             {"product_id": 2, "qty": 1})
    plan = LegacyPlan(member, sid, rec.lrev)
    await world.bridge.after_legacy(plan, status, "POST", headers, "t")
    doc = shop((await world.record(sid))["doc"])
    assert dict(doc.cart) == {5: 1, 2: 1}, "new's item once, legacy's item kept"
    with pytest.raises(LockLost):  # the stalled holder wakes up: its write lands nowhere
        await stalled.write(lease, None, release=True, fields={"lrev": 1})
    assert dict(shop((await world.record(sid))["doc"]).cart) == {5: 1, 2: 1}


async def test_an_import_from_a_holder_whose_lease_ran_out_never_lands(
        world: World, key_prefix: str) -> None:
    sid = await world.login_on("a")
    await world.bridge.before_legacy(sid, "a", "t")
    member = world.pool.members["a"]
    loop = asyncio.get_running_loop()
    slow = SessionStore(world.redis, key_prefix, 3600, handle_key=SESSION_KEY, lease_ms=100)
    old, rec = await slow.acquire(sid, loop.time() + 5)
    assert rec is not None
    await await_until(lambda: _lease_over(world, key_prefix, sid), timeout=5,
                      what="the old holder's lease to run out")
    # a newer holder looks at the session on its node ...
    fresh, _ = await world.store.acquire(sid, loop.time() + 5)
    assert fresh.fence > old.fence
    await world.bridge.hook.export(member.upstream, sid, "t", fence=fresh.fence)
    # ... so the old holder's import, arriving late, is refused by the node itself
    changed = ShopSession.from_document(rec.doc).with_item(9, 9).to_document()
    late = await world.bridge.hook.import_(member.upstream, sid, changed, rec.lrev, "t",
                                           fence=old.fence)
    assert not late.ok and late.fenced
    assert await world.node_cart("a", sid) == {}
    await world.store.release(fresh)


async def _lease_over(world: World, prefix: str, sid: str) -> bool:
    raw = await world.redis.hmget(world.store.key(sid), ["le"])
    now_s, now_us = await world.redis.time()
    return int(raw[0] or 0) <= now_s * 1000 + now_us // 1000


async def test_a_checkout_on_new_beside_an_add_on_legacy_reaches_legacy(world: World) -> None:
    """Two tabs: an add served by legacy, a checkout on new that settles the cart in
    Redis between legacy's answer and the pull. The merge keeps both, and the node
    gets the merged cart before it serves the session again."""
    sid = await world.login_on("a")
    await world.add_on_node("a", sid, 4, 6)
    plan = await world.bridge.before_legacy(sid, "a", "t")
    status, _, headers = await world.on_node("a", "POST", "/api/cart/items", sid,
                                             {"product_id": 9, "qty": 2})
    await world.new_writes(sid, lambda d: d.settle(200, {4: 6}))
    after = await world.bridge.after_legacy(plan, status, "POST", headers, "t")
    record = await world.record(sid)
    assert dict(shop(record["doc"]).cart) == {9: 2}
    assert record["lv"] == "-1", "legacy does not hold the merged cart"
    again = await world.bridge.before_legacy(sid, "a", "t", after.sync_cookie)
    assert again.member.id == "a"
    assert await world.node_cart("a", sid) == {9: 2}


async def test_a_write_on_new_between_export_and_record_is_merged_and_pushed_later(
        world: World) -> None:
    """New settles a checkout while the pull of a legacy add is under way (after the
    export, before the record write): the pull's first write loses its compare-and-set,
    merges again, and must not leave this process believing legacy holds the result."""
    sid = await world.login_on("a")
    await world.add_on_node("a", sid, 4, 6)
    plan = await world.bridge.before_legacy(sid, "a", "t")
    status, _, headers = await world.on_node("a", "POST", "/api/cart/items", sid,
                                             {"product_id": 9, "qty": 2})
    real_export = world.bridge.hook.export

    async def export_then_new_writes(*args: Any, **kwargs: Any) -> Any:
        copy = await real_export(*args, **kwargs)
        await world.new_writes(sid, lambda d: d.settle(200, {4: 6}))
        return copy

    world.bridge.hook.export = export_then_new_writes  # type: ignore[method-assign]
    after = await world.bridge.after_legacy(plan, status, "POST", headers, "t")
    world.bridge.hook.export = real_export  # type: ignore[method-assign]
    record = await world.record(sid)
    assert dict(shop(record["doc"]).cart) == {9: 2} and record["lv"] == "-1"
    await world.bridge.before_legacy(sid, "a", "t", after.sync_cookie)
    assert await world.node_cart("a", sid) == {9: 2}, "the merged cart reached legacy first"


async def test_a_legacy_change_whose_pull_cannot_run_in_time_stands_and_is_marked_ahead(
        world: World, key_prefix: str) -> None:
    """Legacy made the change: the answer stands. The pull could not take the lock
    within the budget, so the client's token says the node is ahead, and the next
    request anywhere resyncs before trusting the store."""
    sid = await world.login_on("a")
    plan = await world.bridge.before_legacy(sid, "a", "t")
    loop = asyncio.get_running_loop()
    other = SessionStore(world.redis, key_prefix, 3600, handle_key=SESSION_KEY, lease_ms=60_000)
    holder, _ = await other.acquire(sid, loop.time() + 5)  # another request's long sync
    hurried = SessionBridge(world.store, world.pool, world.bridge.hook, world.bridge.minter,
                            Metrics(), SHOP, budget_s=0.3)
    status, _, headers = await world.on_node("a", "POST", "/api/cart/items", sid,
                                             {"product_id": 8, "qty": 1})
    after = await hurried.after_legacy(plan, status, "POST", headers, "t")
    assert after.error is None and after.sync_cookie is not None
    assert after.sync_cookie.startswith(".")
    await other.release(holder)
    token, fresh = await world.bridge.token_for_new(sid, "a", "t", after.sync_cookie)
    assert token is not None and fresh is not None
    doc = shop((await world.record(sid))["doc"])
    assert dict(doc.cart) == {8: 1}, "the change made while the lock was held reached Redis"


async def test_two_tabs_a_write_on_new_during_a_legacy_pull_is_never_hidden(
        world: World) -> None:
    """Tab 1 checks out on new while tab 2's add is pulled from legacy; new's answer
    reaches the client before legacy's, so the client keeps legacy's sync token. What
    the pull learnt began before new's write ended: it must not make the next read skip
    the record (it would show the ordered items still in the cart)."""
    sid = await world.login_on("a")
    await world.add_on_node("a", sid, 4, 6)
    first = await world.bridge.before_legacy(sid, "a", "t")
    plan = await world.bridge.before_legacy(sid, "a", "t", first.sync_cookie)
    status, _, headers = await world.on_node("a", "POST", "/api/cart/items", sid,
                                             {"product_id": 9, "qty": 2})
    world.bridge.may_change_on_new(sid)  # tab 1: the checkout is routed to new
    real_write = world.store.write

    async def pull_then_new_settles(*args: Any, **kwargs: Any) -> Any:
        done = await real_write(*args, **kwargs)  # the pull's record write: in sync ...
        await world.new_writes(sid, lambda d: d.settle(19, {4: 6}))  # ... then new writes
        world.bridge.changed_on_new(sid)  # and answers, before the pull has finished
        return done

    world.store.write = pull_then_new_settles  # type: ignore[method-assign]
    after = await world.bridge.after_legacy(plan, status, "POST", headers, "t")
    world.store.write = real_write  # type: ignore[method-assign]
    reads = CountingReads(world)
    await world.bridge.before_legacy(sid, "a", "t", after.sync_cookie)  # tab 2 looks
    assert reads.count >= 1, "knowledge older than new's write is not trusted"
    assert await world.node_cart("a", sid) == {9: 2}


async def test_a_write_on_legacy_always_reads_the_record(world: World) -> None:
    sid = await world.login_on("a")
    token = (await world.bridge.before_legacy(sid, "a", "t")).sync_cookie
    reads = CountingReads(world)
    await world.bridge.before_legacy(sid, "a", "t", token, safe=True)
    assert reads.count == 0
    await world.bridge.before_legacy(sid, "a", "t", token, safe=False)
    assert reads.count == 1


async def test_a_node_that_dies_between_its_answer_and_the_pull_is_an_unknown_outcome(
        world: World) -> None:
    """The node made the change and died before the gateway could pull it: the change
    is gone with it, so the client must not be told it was made."""
    sid = await world.login_on("a")
    await world.add_on_node("a", sid, 1, 1)
    plan = await world.bridge.before_legacy(sid, "a", "t")
    status, _, headers = await world.on_node("a", "POST", "/api/cart/items", sid,
                                             {"product_id": 2, "qty": 1})
    assert status == 200
    await world.servers["a"].close()
    world.pool.mark_down("a", "test")  # its health check noticed first
    after = await world.bridge.after_legacy(plan, status, "POST", headers, "t")
    assert after.error is not None, "an answer whose change may be lost is not a 200"
    assert after.sync_cookie is not None and after.sync_cookie.startswith(".")
    again = await world.bridge.before_legacy(sid, "b", "t", after.sync_cookie)
    assert again.member.id == "b"
    assert await world.node_cart("b", sid) == {1: 1}, "b gets the state the store holds"


async def test_a_session_that_does_not_fit_is_left_to_its_node(world: World) -> None:
    """A profile that says ``csrf`` is a number: the shop's string does not fit. That
    session is served by its node as it is, never stored, never sent to new; the log and
    the metrics say why; another session's bridging is untouched."""
    strict = build({**shop_session(), "fields": {
        **shop_session()["fields"], "csrf": {"path": "/csrf", "rule": "lww",
                                             "type": "integer"}}})
    metrics = Metrics()
    bridge = SessionBridge(world.store, world.pool, LegacyHook(world.token, strict),
                           world.bridge.minter, metrics, strict)
    sid = await world.login_on("b")
    plan = await bridge.before_legacy(sid, hint="b", rid="t", safe=False)
    assert plan.unfit and plan.member.id == "b"
    assert "doc" not in await world.record(sid), "nothing of it reaches the store"
    status, _, headers = await world.on_node("b", "POST", "/api/cart/items", sid,
                                             {"product_id": 3, "qty": 1})
    assert status == 200
    after = await bridge.after_legacy(plan, status, "POST", headers, "t")
    assert after.error is None and not after.retry
    with pytest.raises(SessionUnbridgeable):
        await bridge.token_for_new(sid, "b", "t")
    assert metrics.unbridgeable_total.labels("type")._value.get() == 1  # counted once
    # the same session under the shop's own profile is bridged as ever
    assert (await world.bridge.before_legacy(sid, "b", "t", safe=False)).unfit is False
    assert shop((await world.record(sid))["doc"]).cart == {3: 1}


async def test_a_login_whose_session_does_not_fit_keeps_its_answer(world: World) -> None:
    """The reported outage: a login through the gateway whose new session does not fit
    answered 502 and lost the cookie. Now the answer stands and the node keeps it."""
    strict = build({**shop_session(), "identity": {"user_id": {"path": "/uid",
                                                                "type": "string"}}})
    bridge = SessionBridge(world.store, world.pool, LegacyHook(world.token, strict),
                           world.bridge.minter, Metrics(), strict)
    plan = await bridge.before_legacy(None, hint="a", rid="t", safe=False)
    sid = await world.login_on("a", "bob")
    headers = CIMultiDict({"X-Shop-Session-Id": sid, "X-Shop-Session-Rev": "1"})
    after = await bridge.after_legacy(plan, 200, "POST", headers, "t")
    assert after.error is None and after.sync_cookie is not None
    assert after.sync_cookie.startswith("."), "every gateway must ask the node first"
    again = await bridge.before_legacy(sid, hint="a", rid="t", sync=after.sync_cookie)
    assert again.unfit and again.member.id == "a"


async def test_the_session_id_is_in_no_token_and_no_redis_key(world: World) -> None:
    """A leaked token or a copy of Redis must not yield a usable cookie: both name the
    session by its handle (HMAC of the id with the session key)."""
    sid = await world.login_on("a")
    await world.bridge.before_legacy(sid, "a", "t")
    token, _ = await world.bridge.token_for_new(sid, "a", "t", audience="cart")
    assert token is not None
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sid"] == session_handle(SESSION_KEY, sid) and claims["aud"] == "cart"
    assert sid not in json.dumps(claims)
    keys = [k async for k in world.redis.scan_iter(match=f"{world.prefix}:*")]
    assert keys, "the session is stored"
    for key in keys:
        assert sid.encode() not in key
        for field, value in (await world.redis.hgetall(key)).items():
            assert sid.encode() not in value, f"{key!r} {field!r} holds the session id"
