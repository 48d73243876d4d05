"""The composition root: ``build`` makes the parts without connecting, a rebuild hands
the long-lived ones on, and what a caller brings is the caller's to close."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis.asyncio import Redis

from gateway.observe.metrics import Metrics
from gateway.runtime.compose import Overrides, Parts, build, preflight
from gateway.runtime.startup import Secrets
from gateway.session.signing import KeyRing
from gateway.settings import Config, ConfigError, parse
from gateway.upstream.client import ClientLimits
from gateway.upstream.forward import Upstream
from testkit.fakes import MemorySessionStore, MemoryUpstream, Reply
from testkit.keys import SESSION_KEY, make_keypair

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., Config]:
    keys = make_keypair(tmp_path / "keys")

    def make(mutate: Callable[[dict[str, Any]], None] = lambda d: None) -> Config:
        data = copy.deepcopy(DEMO)
        data["redis"]["url"] = "redis://127.0.0.1:9/0"  # never dialled: build connects nothing
        data["database"]["url"] = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
        data["tokens"]["private_key_file"] = str(keys.private_pem)
        mutate(data)
        return parse(data, "config.yaml")
    return make


def given(**parts: Any) -> Overrides:
    secrets = Secrets("internal", {"admin": "admin"}, SESSION_KEY)
    return Overrides(secrets=secrets, **parts)


@pytest.fixture
async def first(make_cfg: Callable[..., Config]) -> AsyncIterator[Parts]:
    cfg = make_cfg()
    parts = build(cfg, given())
    yield parts
    await parts.held.clients.close()
    await parts.held.ledger.close()
    await parts.held.redis.aclose()


async def test_a_first_build_wires_one_graph(first: Parts) -> None:
    held = first.held
    assert first.pipeline.router is first.router and first.pipeline.decider is first.decider
    assert first.pipeline.bridge is held.bridge and first.pipeline.breakers is first.breakers
    assert set(first.breakers) == set(first.router.routes) == set(first.budgets)
    assert [m.id for m in first.legacy_members] == list(held.legacy.members)
    assert held.owned == {"redis", "store"}


async def test_a_rebuild_keeps_what_the_process_holds_and_unchanged_breakers(
        first: Parts, make_cfg: Callable[..., Config]) -> None:
    cfg = make_cfg(lambda d: (d["routes"][0].update(breaker={"failures": 9}),
                              d["gateway"].update(timeouts={"request_ms": 500})))
    again = build(cfg, running=first)
    assert again.held is first.held
    changed = cfg.routes[0].name
    assert again.breakers[changed] is not first.breakers[changed]
    assert all(again.breakers[n] is first.breakers[n] for n in first.breakers if n != changed)
    assert all(again.budgets[n] is first.budgets[n] for n in first.budgets)
    assert again.router is not first.router and again.pipeline is not first.pipeline
    # the pools are the running ones; their members (with the new timeouts) are new
    assert again.legacy_members[0] is not first.legacy_members[0]


async def test_what_a_caller_brings_is_used_and_not_owned(make_cfg: Callable[..., Config]
                                                          ) -> None:
    cfg = make_cfg()
    redis = Redis.from_url("redis://127.0.0.1:9/0")
    keys = preflight(cfg, given()).keys
    metrics = Metrics()
    parts = build(cfg, given(redis=redis, keys=keys, metrics=metrics))
    try:
        assert parts.held.redis is redis and parts.held.store.redis is redis
        assert parts.held.keys is keys and parts.held.metrics is metrics
        assert parts.held.owned == {"store"}, "made here, on the caller's Redis"
    finally:
        await parts.held.clients.close()
        await parts.held.ledger.close()
        await redis.aclose()


async def test_an_in_memory_store_and_backends_leave_the_network_alone(
        make_cfg: Callable[..., Config]) -> None:
    """Nothing listens at the config's Redis URL: the bridge reads, syncs and mints
    against the in-memory store, and asks only the in-memory backends."""
    store = MemorySessionStore(handle_key=SESSION_KEY)
    backends: dict[str, MemoryUpstream] = {}

    def upstream(upstream_id: str, url: str, limits: ClientLimits) -> Upstream:
        backends[upstream_id] = MemoryUpstream(
            upstream_id, url, lambda r: Reply.json({"boot_id": "b1"}), limits=limits)
        return backends[upstream_id]

    parts = build(make_cfg(), given(store=store, upstreams=upstream))
    held = parts.held
    try:
        assert held.store is store and held.bridge.store is store
        assert held.owned == {"redis"}, "the store is the caller's to stop"
        assert held.legacy.members["b"].upstream is backends["b"] and set(backends) == {
            "a", "b", "n1", "n2"}
        await held.legacy.check_all()
        sid = "s" * 22
        store.put(sid, {"doc": '{"schema":2,"user":{"id":7,"name":"ann"},"fields":{},'
                               '"extra":{}}', "v": 3, "lv": 3, "node": "b@b1", "lrev": 7})
        plan = await held.bridge.before_legacy(sid, None, "r1", safe=False)
        assert (plan.member.id, plan.lrev) == ("b", 7), "in sync on b: no push"
        token, _ = await held.bridge.token_for_new(sid, None, "r2")
        assert token is not None
        assert store.calls == {"read": 2}
        assert [r.target for r in backends["b"].received] == ["/healthz"]
    finally:
        await held.clients.close()
        await held.ledger.close()
        await held.redis.aclose()


def test_preflight_refuses_a_config_without_redis(make_cfg: Callable[..., Config]) -> None:
    cfg = make_cfg(lambda d: d["redis"].update(url=None))
    with pytest.raises(ConfigError, match=r"redis: the gateway needs redis\.url"):
        preflight(cfg, given())


def test_preflight_reads_the_signing_key_once(make_cfg: Callable[..., Config]) -> None:
    cfg = make_cfg()
    ready = preflight(cfg, given())
    assert isinstance(ready.keys, KeyRing) and isinstance(ready.metrics, Metrics)
    assert preflight(cfg, ready) == ready
