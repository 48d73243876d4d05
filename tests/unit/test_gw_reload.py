"""gateway.runtime.reload: what a reload may change live, what it refuses, and how it says so."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.runtime.reload import Reloader, Status, changed_paths, restart_needed
from gateway.settings import Config, parse

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "config.yaml").read_text())


def cfg(mutate: Callable[[dict[str, Any]], None] = lambda d: None) -> Config:
    data = copy.deepcopy(DEMO)
    mutate(data)
    return parse(data, "config.yaml")


def diff(a: Config, b: Config) -> list[str]:
    return changed_paths(a.model_dump(mode="json"), b.model_dump(mode="json"))


def test_changed_paths_name_each_leaf_and_a_list_that_changed_length() -> None:
    old = cfg()
    new = cfg(lambda d: (d["routes"][0].update(fallback={"on": ["connect"]}),
                         d["legacy"]["nodes"].append({"id": "z", "url": "http://127.0.0.1:9"})))
    assert diff(old, new) == ["legacy.nodes", "routes[0].fallback.on"]
    assert diff(old, cfg()) == []


@pytest.mark.parametrize(("mutate", "key"), [
    (lambda d: d["gateway"]["listen"].update(port=9999), "gateway.listen.port"),
    (lambda d: d["redis"].update(key_prefix="other"), "redis.key_prefix"),
    (lambda d: d.setdefault("flags", {}).update(poll_interval_ms=900), "flags.poll_interval_ms"),
    (lambda d: d["gateway"].update(log_level="debug"), "gateway.log_level"),
    (lambda d: d["routes"][0].update(stage="shadow"), "routes[0] (catalog): its flag definition"),
    (lambda d: d["routes"].insert(0, {"name": "search", "paths": ["/api/search"]}),
     "routes[0] (search): a new route with a flag"),
    (lambda d: d["routes"].pop(0), "routes (catalog): a route with a flag was removed"),
])
def test_changes_a_running_process_cannot_make_are_named(mutate: Callable[[dict[str, Any]], None],
                                                         key: str) -> None:
    old, new = cfg(), cfg(mutate)
    refused = restart_needed(old, new, diff(old, new))
    assert any(line.startswith(key) for line in refused), refused


@pytest.mark.parametrize("mutate", [
    lambda d: d["routes"][0].update(breaker={"failures": 9}),
    lambda d: d["routes"][2].update(paths=["/api/cart", "/api/cart/*", "/api/basket"]),
    lambda d: d["routes"].insert(0, {"name": "static", "paths": ["/static/*"],
                                     "legacy_only": True}),
    lambda d: d["legacy"]["nodes"].pop(),
    lambda d: d["gateway"].update(timeouts={"request_ms": 500}),
    lambda d: d["gateway"].update(shutdown={"drain_s": 5}),
    lambda d: d["gateway"].update(limits={"header_read_ms": 2000, "keepalive_idle_ms": 5000,
                                          "body_read_ms": 9000, "max_connections": 100}),
    lambda d: d["routes"][0].update(shadow={"sample_rate": 0.5}),
])
def test_routing_upstreams_and_timeouts_apply_live(mutate: Callable[[dict[str, Any]], None]
                                                   ) -> None:
    old, new = cfg(), cfg(mutate)
    assert diff(old, new)
    assert restart_needed(old, new, diff(old, new)) == []


class _Process:
    """What a Reloader drives: the running config and an apply step."""

    def __init__(self) -> None:
        self.running = cfg()
        self.on_disk: Callable[[], Config] = cfg
        self.applied: list[Config] = []

    def apply(self, new: Config) -> None:
        self.applied.append(new)
        self.running = new

    def reloader(self) -> Reloader:
        return Reloader(lambda: self.running, lambda: self.on_disk(), self.apply)


async def test_a_reload_applies_refuses_or_reports_nothing_to_do() -> None:
    p = _Process()
    r = p.reloader()
    assert (await r.reload("test")).status is Status.UNCHANGED

    p.on_disk = lambda: cfg(lambda d: d["routes"][0].update(breaker={"failures": 9}))
    outcome = await r.reload("test")
    assert outcome.status is Status.APPLIED and outcome.ok
    assert outcome.changed == ("routes[0].breaker.failures",)
    assert p.running.routes[0].breaker.failures == 9

    p.on_disk = lambda: cfg(lambda d: d["routes"][0].update(fallbak={}))
    outcome = await r.reload("test")
    assert outcome.status is Status.INVALID and not outcome.ok
    assert "routes[0].fallbak: unknown key" in outcome.detail
    assert "the running config keeps serving" in outcome.detail

    p.on_disk = lambda: cfg(lambda d: (d["redis"].update(key_prefix="x"),
                                       d["routes"][0].update(breaker={"failures": 3})))
    outcome = await r.reload("test")
    assert outcome.status is Status.NEEDS_RESTART
    assert [line.split(":")[0] for line in outcome.refused] == ["redis.key_prefix"]
    assert len(p.applied) == 1, "all or nothing: the live part of a refused reload waits too"
    assert p.running.routes[0].breaker.failures == 9


@pytest.mark.parametrize("mutate", [
    lambda d: d["gateway"].update(public_hosts=["shop.example"], default_host="shop.example"),
    lambda d: d["gateway"].update(admin_hosts=["localhost", "ops.example"]),
    lambda d: d["gateway"].update(blocked_paths=["/_internal/*", "/healthz", "/metrics"]),
])
def test_hosts_and_blocked_paths_apply_live_like_trusted_proxies(
        mutate: Callable[[dict[str, Any]], None]) -> None:
    old, new = cfg(), cfg(mutate)
    assert diff(old, new)
    assert restart_needed(old, new, diff(old, new)) == []
