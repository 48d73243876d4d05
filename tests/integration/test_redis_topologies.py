"""Redis Cluster and Redis Sentinel, for real: servers these tests start on loopback.

Cluster: three masters (``tests.support.redis_cluster.LocalCluster``). Every
multi-key operation of ours must stay in one hash slot -- the flag MULTI/EXEC,
a session record and its lock, the compare-and-set script -- and flag changes
must still reach every gateway through pub/sub. Then a whole stack of real
processes (2 legacy nodes, 2 new instances, 2 gateways) runs on the cluster.

Sentinel: one master, one replica, three sentinels. The same stack runs on it,
and the master crashes while virtual users keep shopping: afterwards nobody is
logged out and every cart equals its user's model. An add that got an error
is *uncertain* (it may or may not have been applied); the model allows it
either way, and the final cart must lie between "none applied" and "all
applied", product by product. Adds only: a remove on a stale legacy copy
merges by the documented cart rule (new's concurrent raise survives), which
a sequential model would misread as a loss.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import CrossSlotTransactionError, RedisError

from adapters.document import EMPTY
from adapters.handles import session_handle
from adapters.store import WRITE_SCRIPT, write_args
from flags.local import LocalProvider
from flags.model import RouteFlag, Stage
from flags.pins import Pins
from flags.store import FlagStore
from gateway.session.redis_client import make_redis
from gateway.session.store import SessionStore, StoreUnavailable
from gateway.settings import RedisSection
from strangler_sdk.redis_client import make_client, parse_nodes, parse_sentinel
from strangler_sdk.sessions import SharedSessions as ServiceSessions
from tests.support.keys import SESSION_KEY
from tests.support.net import await_until
from tests.support.redis_cluster import LocalCluster, LocalSentinels
from tests.support.shop import Admin, ShopUser, cart_lines
from tests.support.stack import DEFAULT_ROUTES, Stack


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    servers = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield servers.start()
    finally:
        servers.stop()


@pytest.fixture
async def cluster_client(cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    client = make_redis(RedisSection.model_validate({"cluster": {"nodes": cluster.nodes}}))
    assert isinstance(client, RedisCluster)
    yield client
    await client.aclose()


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[LocalSentinels]:
    servers = LocalSentinels(tmp_path / "sentinel")
    try:
        yield servers.start()
    finally:
        servers.stop()


def _stack(tmp_path: Path, redis: dict[str, Any], routes: list[dict[str, Any]]) -> Stack:
    return Stack(tmp_path / "stack", None, redis=redis, gateways=2, routes=routes)


async def _stage_seen(admin: Admin, route: str, stage: str, timeout: float = 5.0) -> float:
    """Seconds until ``admin``'s gateway serves ``route`` at ``stage``."""
    start = time.monotonic()

    async def sees() -> bool:
        body = (await admin.routes()).body
        return any(r["name"] == route and r["stage"] == stage for r in body["routes"])

    await await_until(sees, timeout=timeout, interval=0.02, what=f"{route} at {stage}")
    return time.monotonic() - start


# ---------------------------------------------------------------- cluster
async def test_multi_key_operations_stay_in_one_slot_on_a_real_cluster(
        cluster: LocalCluster, cluster_client: RedisCluster, key_prefix: str) -> None:
    groups = {"cart": "shopping", "checkout": "shopping"}
    defaults = {"cart": RouteFlag(Stage.LEGACY, 0), "checkout": RouteFlag(Stage.LEGACY, 0)}
    # One startup node is enough: it tells the client where the rest are.
    other = make_redis(RedisSection.model_validate({"cluster": {"nodes": cluster.nodes[1:2]}}))
    # A long poll: only a pub/sub message can bring the change within a second.
    writer = LocalProvider(cluster_client, defaults, prefix=key_prefix, groups=groups,
                           poll_interval=30)
    reader = LocalProvider(other, defaults, prefix=key_prefix, groups=groups, poll_interval=30)
    store = writer.store
    assert len({key_slot(k.encode()) for k in (store.routes_key, store.kill_key,
                                                store.version_key, store.channel)}) == 1
    # The v1 layout really would be refused here: that is what the tags are for.
    v1 = [f"{key_prefix}:flags:routes", f"{key_prefix}:flags:version"]
    if key_slot(v1[0].encode()) != key_slot(v1[1].encode()):
        with pytest.raises(CrossSlotTransactionError):
            async with cluster_client.pipeline(transaction=True) as pipe:
                pipe.hset(v1[0], "cart", "{}")
                pipe.incr(v1[1])
                await pipe.execute()
    try:
        await writer.start()
        await reader.start()
        await await_until(lambda: _true(reader.healthy), what="reader subscribed")
        change = await writer.set_route("cart", Stage.NEW, None, actor="test")
        assert change.moved == ("cart", "checkout")  # one MULTI/EXEC for the whole group
        start = time.monotonic()
        await await_until(lambda: _true(reader.view.state.version == change.version),
                          timeout=1.0, interval=0.01, what="flip to reach the other provider")
        assert time.monotonic() - start < 1.0
        assert reader.view.state.routes["checkout"].stage is Stage.NEW
        await writer.set_kill(True, actor="test")
        assert await store.reset() == change.version + 2
        assert (await store.load()).routes["cart"].stage is Stage.LEGACY
    finally:
        await writer.stop()
        await reader.stop()
        await other.aclose()

    pins = Pins(cluster_client, key_prefix)
    await pins.add("cart", "s" * 20)
    assert await pins.has("cart", "s" * 20) and await pins.count("cart") == 1
    assert await pins.clear("cart") == 1

    # A session record: written by a new service, read, locked and rewritten by the gateway.
    service_client = make_client(cluster=parse_nodes(cluster.nodes[2]))
    assert isinstance(service_client, RedisCluster)
    services = ServiceSessions(service_client, prefix=key_prefix, ttl_s=60, cas_attempts=5,
                               handle_key=SESSION_KEY)
    gateway = SessionStore(cluster_client, key_prefix, 60, handle_key=SESSION_KEY)
    sid = await services.create(EMPTY)
    record = await gateway.read(sid)
    assert record is not None and record.v == 1
    lease, locked = await gateway.acquire(sid, asyncio.get_running_loop().time() + 5)
    assert locked == record
    assert await gateway.write(lease, 1, bump=True, set_lv=True,
                               fields={"node": "a", "lrev": 1}) == (True, 2)
    assert await gateway.write(lease, 1, bump=True, release=True, fields={}) == (False, 2)
    await gateway.release(lease)
    snap = await services.read(session_handle(SESSION_KEY, sid))  # new reads by handle
    assert snap is not None and snap.v == 2
    await service_client.aclose()


async def _true(value: bool) -> bool:
    return value


async def test_flags_kept_under_the_v1_keys_are_adopted_once(
        redis_client: Redis, key_prefix: str) -> None:
    """An upgrade on a single server keeps the live stages: the untagged v1 keys
    are renamed to the tagged ones, atomically, by whichever process comes first."""
    defaults = {"cart": RouteFlag(Stage.LEGACY, 0), "orders": RouteFlag(Stage.LEGACY, 0)}
    before = FlagStore(redis_client, defaults, prefix=key_prefix)
    try:
        await before.set_route("cart", Stage.CANARY, 30, actor="test")
        await before.set_kill(True, actor="test")
        v1 = [f"{key_prefix}:flags:{name}" for name in ("routes", "kill", "version")]
        for tagged, old in zip((before.routes_key, before.kill_key, before.version_key), v1,
                               strict=True):
            await redis_client.rename(tagged, old)  # the layout an older release left
        first, second = (FlagStore(redis_client, defaults, prefix=key_prefix)
                         for _ in range(2))
        states = await asyncio.gather(first.load(), second.load())
        for state in states:
            assert state.version == 2 and state.kill_switch
            cart = state.routes["cart"]
            assert (cart.stage, cart.percent, cart.updated_by) == (Stage.CANARY, 30, "test")
        assert await redis_client.exists(*v1) == 0
        assert (await first.set_route("orders", Stage.NEW, None, actor="test")).version == 3
    finally:
        await before.reset()
        await redis_client.delete(before.routes_key, before.kill_key, before.version_key)


async def test_a_cluster_that_is_down_is_an_outage_like_any_other(
        tmp_path: Path, key_prefix: str) -> None:
    """Clients made before the cluster answers: redis-py's RedisClusterException (no
    RedisError) would fail requests and kill the flag follower; they degrade instead,
    and recover by themselves once the cluster is up."""
    servers = LocalCluster(tmp_path / "late")
    section = RedisSection.model_validate({"cluster": {"nodes": servers.nodes}})
    client = make_redis(section)
    service_client = make_client(cluster=parse_nodes(servers.nodes[0]))
    store = SessionStore(client, key_prefix, 60, handle_key=SESSION_KEY)
    services = ServiceSessions(service_client, prefix=key_prefix, ttl_s=60, cas_attempts=5,
                               handle_key=SESSION_KEY)
    provider = LocalProvider(client, {"cart": RouteFlag(Stage.LEGACY, 0)}, prefix=key_prefix)
    try:
        with pytest.raises(StoreUnavailable):
            await store.read("s" * 20)
        with pytest.raises(RedisError):  # the services' middleware answers 503
            await services.read("s" * 20)
        with pytest.raises(RedisError):
            await Pins(client, key_prefix).count("cart")
        await provider.start()
        assert not provider.healthy
        servers.start()
        await await_until(lambda: _true(provider.healthy and store.up), timeout=10,
                          what="flags and sessions back once the cluster is up")
        sid = await services.create(EMPTY)
        assert (await store.read(sid)) is not None
        await provider.set_route("cart", Stage.NEW, None, actor="test")
        assert provider.view.state.routes["cart"].stage is Stage.NEW
    finally:
        await provider.stop()
        await store.stop()
        await client.aclose()
        await service_client.aclose()
        servers.stop()


async def test_a_stack_on_the_cluster_bridges_sessions_flips_and_pins(
        tmp_path: Path, cluster: LocalCluster, cluster_client: RedisCluster) -> None:
    routes = [{**r, "pin": True} if r["name"] == "cart" else r for r in DEFAULT_ROUTES]
    stack = _stack(tmp_path, {"cluster": {"nodes": cluster.nodes}}, routes)
    pins = Pins(cluster_client, stack.prefix)
    try:
        stack.start()
        await _round_trip(stack)
        first, second = Admin(stack.admin_url(0), stack.admin_token), \
            Admin(stack.admin_url(1), stack.admin_token)
        async with ShopUser(stack.url(0)) as pinned, ShopUser(stack.url(1)) as fresh:
            await pinned.must_login("bob")
            assert (await first.set_route("cart", "canary", 100)).status == 200
            await _stage_seen(second, "cart", "canary")
            assert (await pinned.cart()).backend == "new"  # served by new: pinned
            await await_until(lambda: pins.count("cart"), what="the pin recorded")
            assert (await first.set_route("cart", "canary", 0)).status == 200
            await _stage_seen(second, "cart", "canary")
            assert (await pinned.cart()).backend == "new", "a pinned session stays on new"
            await fresh.must_login("carol")
            assert (await fresh.cart()).backend == "legacy"
            back = stack.cli("flags", "set", "cart", "legacy")
            assert back.returncode == 0, back.stderr
            assert "cart: 1 pin(s) cleared" in back.stdout
            await _stage_seen(first, "cart", "legacy")
            assert (await pinned.cart()).backend == "legacy"
    except BaseException:
        print(stack.logs())
        print(cluster.logs())
        raise
    finally:
        stack.stop()


async def _round_trip(stack: Stack) -> None:
    """Login on legacy, flip cart to new (seen by the other gateway within a second),
    same cart on new, add there, flip back with the CLI: legacy shows the add."""
    first, second = Admin(stack.admin_url(0), stack.admin_token), \
        Admin(stack.admin_url(1), stack.admin_token)
    async with ShopUser(stack.url(0)) as user:
        assert (await user.login("alice")).status == 200
        added = await user.add(3, 2)
        assert added.backend == "legacy" and cart_lines(added) == {3: 2}
        assert (await first.set_route("cart", "new")).status == 200
        assert await _stage_seen(second, "cart", "new") < 1.0
        user.base = stack.url(1)  # same cookies, the other gateway
        on_new = await user.cart()
        assert on_new.backend == "new" and cart_lines(on_new) == {3: 2}
        assert cart_lines(await user.add(5, 1)) == {3: 2, 5: 1}
        back = stack.cli("flags", "set", "cart", "legacy", "--reason", "rollback")
        assert back.returncode == 0, back.stderr
        await _stage_seen(second, "cart", "legacy")
        on_legacy = await user.cart()
        assert on_legacy.backend == "legacy" and cart_lines(on_legacy) == {3: 2, 5: 1}


# ---------------------------------------------------------------- sentinel
RECOVERY_DEADLINE_S = 5.0
"""From the promotion of the replica until every gateway's session store is up again
and every shopper has had an add acknowledged by a new service (on the new master)."""


@dataclass(frozen=True)
class Ack:
    at: float
    backend: str | None
    explained: bool
    """The cart in the reply was the user's model (plus some of its uncertain adds)."""


@dataclass
class Shopper:
    """One virtual user and what it knows about its own cart."""

    user: ShopUser
    username: str
    model: Counter[int] = field(default_factory=Counter)
    """Adds the shop acknowledged."""
    uncertain: Counter[int] = field(default_factory=Counter)
    """Adds that got an error: applied or not, nobody told the user."""
    errors: list[float] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)

    async def shop(self, stop: asyncio.Event, rng: random.Random) -> None:
        while not stop.is_set():
            product = rng.randint(1, 12)
            try:
                reply = await self.user.add(product, 1)
                ok = reply.status == 200
            except (TimeoutError, aiohttp.ClientError):
                ok = False
            if ok:
                self.model[product] += 1
                self.acks.append(Ack(time.monotonic(), reply.backend,
                                     self.explains(cart_lines(reply))))
            else:
                self.uncertain[product] += 1
                self.errors.append(time.monotonic())
            await asyncio.sleep(0.02)

    def on_new_since(self, t: float) -> list[Ack]:
        return [a for a in self.acks if a.at > t and a.backend == "new"]

    def explains(self, cart: dict[int, int]) -> bool:
        """Every product's quantity is the model's plus some of its uncertain adds."""
        return all(self.model[p] <= cart.get(p, 0) <= self.model[p] + self.uncertain[p]
                   for p in set(cart) | set(self.model))


@dataclass
class Writer:
    """Compare-and-set writes to one session record, back to back, as new services make them.

    Every write expects the ``v`` the last one left, so a write acknowledged by
    the old master and lost in the failover would turn the next write into a
    conflict: ``conflicts`` must stay 0. A write that got an error is settled by
    the next read: applied (``v`` moved) or not.
    """

    name: str
    store: SessionStore
    sid: str
    v: int = 1
    acked: int = 0
    errors: list[float] = field(default_factory=list)
    applied_after_error: int = 0
    conflicts: int = 0
    oks: list[float] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        unsettled = False
        while not stop.is_set():
            try:
                if unsettled:
                    record = await self.store.read(self.sid)
                    assert record is not None, f"{self.name}: the record is gone"
                    self.applied_after_error += record.v - self.v
                    self.v, unsettled = record.v, False
                ok, v = await self._write(self.v, {"lrev": self.v + 1})
            except StoreUnavailable:
                self.errors.append(time.monotonic())
                unsettled = True
                await asyncio.sleep(0.02)
                continue
            if ok:
                self.acked += 1
                self.oks.append(time.monotonic())
            else:
                self.conflicts += 1
            self.v = v
            await asyncio.sleep(0.005)

    async def _write(self, v: int, fields: dict[str, str | int]) -> tuple[bool, int]:
        script = self.store.redis.register_script(WRITE_SCRIPT)
        try:
            answer = await script(keys=[self.store.key(self.sid)],
                                  args=write_args(v, 300, bump=True, set_lv=False, fields=fields))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        return int(answer[0]) == 1, int(answer[1])

    def ok_since(self, t: float) -> bool:
        return bool(self.oks) and self.oks[-1] > t


@dataclass
class StoreWatch:
    """Each gateway's ``session_store`` in readyz, polled: when it went down, came back."""

    admins: list[Admin]
    down_at: dict[int, float] = field(default_factory=dict)
    up_at: dict[int, float] = field(default_factory=dict)

    def up(self) -> bool:
        return all(i not in self.down_at or i in self.up_at for i in range(len(self.admins)))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for i, admin in enumerate(self.admins):
                try:
                    up = (await admin.ready()).body["session_store"] == "up"
                except (TimeoutError, aiohttp.ClientError, KeyError, TypeError):
                    continue
                now = time.monotonic()
                if not up:
                    self.down_at.setdefault(i, now)
                    self.up_at.pop(i, None)
                elif i in self.down_at:
                    self.up_at.setdefault(i, now)
            await asyncio.sleep(0.05)


async def test_sentinel_failover_during_traffic_loses_no_session_and_no_cart(
        tmp_path: Path, sentinels: LocalSentinels, key_prefix: str) -> None:
    redis = {"sentinel": {"master_name": sentinels.name, "nodes": sentinels.nodes}}
    # New fails while no master answers, so the cart breaker opens; a short cool-down
    # lets the test see new serve again soon after the promotion.
    routes = [{**r, "breaker": {"failures": 5, "cooldown_ms": 1000}} if r["name"] == "cart"
              else r for r in DEFAULT_ROUTES]
    stack = _stack(tmp_path, redis, routes)
    # Beside the stack, this process writes session records through both factories.
    gateway_client = make_redis(RedisSection.model_validate(redis))
    service_client = make_client(sentinel=parse_sentinel(sentinels.spec))
    stores = [SessionStore(c, key_prefix, 300, handle_key=SESSION_KEY)
              for c in (gateway_client, service_client)]
    services = ServiceSessions(service_client, prefix=key_prefix, ttl_s=300, cas_attempts=5,
                               handle_key=SESSION_KEY)
    try:
        writers = [Writer(name, store, await services.create(EMPTY))
                   for name, store in zip(("gateway", "services"), stores, strict=True)]
        stack.start()
        await _round_trip(stack)
        admins = [Admin(stack.admin_url(i), stack.admin_token) for i in (0, 1)]
        assert (await admins[0].set_route("cart", "new")).status == 200
        await _stage_seen(admins[1], "cart", "new")
        names = ("alice", "bob", "carol", "dave")
        shoppers = [Shopper(ShopUser(stack.url(i % 2)), names[i % 4]) for i in range(12)]
        try:
            await _failover_during_traffic(stack, sentinels, shoppers, admins, writers)
        finally:
            await asyncio.gather(*(s.user.close() for s in shoppers))
        for w in writers:
            record = await w.store.read(w.sid)
            assert record is not None
            assert w.conflicts == 0, f"{w.name}: an acknowledged write was lost"
            assert record.v == 1 + w.acked + w.applied_after_error, (w, record)
            assert record.lrev == record.v, (w, record)
    except BaseException:
        print(stack.logs())
        print(sentinels.logs())
        raise
    finally:
        stack.stop()
        for store in stores:
            await store.stop()
        await gateway_client.aclose()
        await service_client.aclose()


async def _failover_during_traffic(stack: Stack, sentinels: LocalSentinels,
                                   shoppers: list[Shopper], admins: list[Admin],
                                   writers: list[Writer]) -> None:
    for s in shoppers:
        assert (await s.user.login(s.username)).status == 200
    stop = asyncio.Event()
    rng = random.Random(6)
    watch = StoreWatch(admins)
    tasks = [asyncio.create_task(s.shop(stop, random.Random(rng.random()))) for s in shoppers]
    tasks.append(asyncio.create_task(watch.run(stop)))
    tasks += [asyncio.create_task(w.run(stop)) for w in writers]
    try:
        await await_until(lambda: _true(all(len(s.acks) >= 3 for s in shoppers)),
                          what="every shopper shopping before the kill")
        before = sum(len(s.acks) for s in shoppers)
        killed = sentinels.kill_master()
        promoted = await asyncio.to_thread(sentinels.wait_failover)
        # The clients find the new master by themselves, within the deadline...
        try:
            await await_until(lambda: _true(watch.up() and all(
                s.on_new_since(promoted) for s in shoppers) and all(
                w.ok_since(promoted) for w in writers)), timeout=RECOVERY_DEADLINE_S,
                interval=0.01, what="gateways and services back on the new master")
        except TimeoutError as exc:
            waiting = [s.username for s in shoppers if not s.on_new_since(promoted)]
            raise AssertionError(f"not recovered {RECOVERY_DEADLINE_S} s after the promotion: "
                                 f"store down={watch.down_at} up={watch.up_at}, shoppers "
                                 f"without a new ack: {waiting}, writers "
                                 f"{[w for w in writers if not w.ok_since(promoted)]}") from exc
        # ...and traffic goes on against it.
        await await_until(lambda: _true(all(len(s.on_new_since(promoted)) >= 5
                                            for s in shoppers)),
                          what="traffic on the new master")
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    _report(shoppers, watch, writers, before, killed, promoted)

    seen: list[Any] = []

    async def all_ready() -> bool:
        seen[:] = [(await a.ready()).body for a in admins]
        return all(body["status"] == "ready" for body in seen)

    try:
        await await_until(all_ready, timeout=15, what="both gateways ready again")
    except TimeoutError as exc:
        raise AssertionError(f"still not ready: {seen}") from exc

    for s in shoppers:
        me = await s.user.me()
        assert me.status == 200 and me.body["user"]["username"] == s.username, "logged out"
        cart = await s.user.cart()
        assert cart.status == 200 and cart.backend == "new"
        assert s.explains(cart_lines(cart)), (cart_lines(cart), s.model, s.uncertain)
        s.model = Counter(cart_lines(cart))  # the uncertain adds are settled now
    rollback = stack.cli("flags", "set", "cart", "legacy", "--reason", "after failover")
    assert rollback.returncode == 0, rollback.stderr
    # Both gateways' flag subscriptions followed the failover too.
    assert await _stage_seen(admins[1], "cart", "legacy") < 1.0
    for s in shoppers:
        cart = await s.user.cart()
        assert cart.backend == "legacy" and cart_lines(cart) == dict(s.model)


def _stale_by_phase(acks: list[Ack], killed: float, promoted: float,
                    watch: StoreWatch) -> dict[str, int]:
    recovered = max([promoted, *watch.up_at.values()])
    phases = {"before the kill": (0.0, killed), "until the promotion": (killed, promoted),
              "until both gateways saw the store up": (promoted, recovered),
              "afterwards": (recovered, float("inf"))}
    return {name: sum(1 for a in acks if lo < a.at <= hi and not a.explained)
            for name, (lo, hi) in phases.items()}


def _report(shoppers: list[Shopper], watch: StoreWatch, writers: list[Writer], before: int,
            killed: float, promoted: float) -> None:
    """What the failover cost, printed (``-s``) for the README and the report."""
    acks = [a for s in shoppers for a in s.acks]
    errors = sorted(t for s in shoppers for t in s.errors)
    first_new = max(min(a.at for a in s.on_new_since(promoted)) for s in shoppers)
    stores = ", ".join(
        f"gateway {i}: down +{watch.down_at[i] - killed:.2f} s, up "
        f"+{watch.up_at[i] - promoted:.2f} s after the promotion" if i in watch.down_at
        else f"gateway {i}: never seen down" for i in range(len(watch.admins)))
    by_backend = Counter(a.backend for a in acks if killed < a.at < promoted)
    print(f"\nsentinel failover: kill -> promoted in {promoted - killed:.2f} s; "
          f"{len(acks)} adds acknowledged ({before} before the kill; between kill and "
          f"promotion {dict(by_backend)}); {len(errors)} errors"
          + (f" from +{errors[0] - killed:.2f} s to +{errors[-1] - killed:.2f} s"
             if errors else "")
          + f"; replies whose cart lacked acknowledged adds (a legacy copy the gateway "
          f"could not update, merged afterwards): {_stale_by_phase(acks, killed, promoted, watch)}"
          f"; {stores}; "
          f"every shopper served by new again {first_new - promoted:.2f} s after the promotion")
    for w in writers:
        first_ok = min(t for t in w.oks if t > promoted)
        print(f"  {w.name} client: {w.acked} writes acknowledged, {len(w.errors)} errors"
              + (f" from +{w.errors[0] - killed:.2f} s to +{w.errors[-1] - killed:.2f} s"
                 if w.errors else "")
              + f" ({w.applied_after_error} of them applied after all), first write on the "
              f"new master {first_ok - promoted:.2f} s after the promotion, "
              f"{w.conflicts} conflicts")
