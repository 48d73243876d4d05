"""The Unleash-server provider against a real Unleash server (npm's unleash-server 7.4.1).

One server serves the whole run (``unleash_server``, session-scoped). Tests
share it, so each uses route names of its own; the kill switch feature is
global, and a test that turns it on turns it off again.

Flips are made the way an operator elsewhere would make them: through the
Admin API, by a writer that is not the provider under test.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from flags import FlagState, FlagView, RouteFlag, Stage
from flags.features import KILL_SWITCH_FEATURE, feature_name, route_feature
from flags.unleash_admin import UnleashAdmin
from flags.unleash_flags import UnleashFlags
from flags.unleash_server import UnleashServerProvider
from gateway.runtime.startup import make_provider
from gateway.settings import parse
from tests.support.faultproxy import FaultProxy, Mode
from tests.support.harness import ADMIN_TOKEN, GatewayHarness
from tests.support.keys import KeyPair
from tests.support.net import await_until, free_port
from tests.support.procs import ROOT
from tests.support.profiles import shop_session
from tests.support.unleash import ENVIRONMENT, UnleashServer

REFRESH_S = 1
SERVER_TICK_S = 1.0
"""Unleash recomputes the client API's revision (its ETag) once a second."""
MARGIN_S = 1.5
FLIP_DEADLINE_S = REFRESH_S + SERVER_TICK_S + MARGIN_S
SESSIONS = [uuid.uuid4().hex for _ in range(1000)]
PROPAGATION: list[float] = []


def _names(*logical: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:6]
    return {name: f"{name}-{tag}" for name in logical}


@pytest.fixture
async def writer(unleash_server: UnleashServer) -> AsyncIterator[UnleashAdmin]:
    admin = UnleashAdmin(unleash_server.url, unleash_server.admin_token)
    yield admin
    await admin.close()


def _flags(admin: UnleashAdmin, routes: list[str],
           groups: dict[str, str] | None = None) -> UnleashFlags:
    return UnleashFlags(admin, routes, groups)


def _provider(server: UnleashServer, tmp_path: Path, routes: list[str], *,
              url: str | None = None, app: str | None = None, snapshot: Path | None = None,
              groups: dict[str, str] | None = None) -> UnleashServerProvider:
    return UnleashServerProvider(
        url=url or server.url, client_token=server.client_token, admin_token=server.admin_token,
        routes=routes, groups=groups,
        snapshot_file=snapshot or tmp_path / "unleash-snapshot.json",
        app_name=app or f"strangler-test-{uuid.uuid4().hex[:6]}", environment=ENVIRONMENT,
        refresh_interval=REFRESH_S, metrics_interval=1, request_timeout=2)


@pytest.fixture
async def started() -> AsyncIterator[list[UnleashServerProvider]]:
    """Providers a test started, stopped at the end whatever happens."""
    providers: list[UnleashServerProvider] = []
    yield providers
    for p in providers:
        await p.stop()


async def _arrives(provider: UnleashServerProvider, route: str, stage: Stage,
                   percent: int = 0) -> float:
    """Seconds until ``provider`` shows the setting (fails past the flip deadline)."""
    want = RouteFlag(stage, percent)
    t0 = time.monotonic()
    await await_until(lambda: _true((f := provider.view.flag(route)) is not None
                                    and f.same_setting(want)),
                      timeout=FLIP_DEADLINE_S, interval=0.01,
                      what=f"{route} -> {stage.value} {percent}% at the provider")
    return time.monotonic() - t0


async def _true(value: bool) -> bool:
    return value


# ---------------------------------------------------------------- features and flips

async def test_each_route_is_a_feature_made_through_the_admin_api(
        writer: UnleashAdmin) -> None:
    r = _names("catalog", "cart", "orders")
    flags = _flags(writer, list(r.values()))
    await flags.set_route(r["catalog"], Stage.LEGACY, None, actor="t")
    await flags.set_route(r["cart"], Stage.CANARY, 25, actor="t")
    await flags.set_route(r["orders"], Stage.NEW, None, actor="t")
    for route, flag in ((r["catalog"], RouteFlag(Stage.LEGACY)),
                        (r["cart"], RouteFlag(Stage.CANARY, 25)),
                        (r["orders"], RouteFlag(Stage.NEW))):
        feature = await writer.feature(feature_name(route))
        assert feature is not None and feature["type"] == "release"
        env = writer.env_of(feature)
        want = route_feature(route, flag)
        assert env["enabled"] is want["enabled"]
        (strategy,) = env["strategies"]
        assert strategy["name"] == "flexibleRollout"
        assert strategy["parameters"] == want["strategies"][0]["parameters"]
        (variant,) = strategy["variants"]
        assert (variant["name"], variant["payload"], variant["stickiness"]) == (
            flag.stage.value, {"type": "string", "value": flag.stage.value}, "sessionId")
    state = await flags.load()
    assert {k: (f.stage, f.percent) for k, f in state.routes.items()} == {
        r["catalog"]: (Stage.LEGACY, 0), r["cart"]: (Stage.CANARY, 25),
        r["orders"]: (Stage.NEW, 100)}
    # a second write finds the feature and replaces its strategy, never adds one
    await flags.set_route(r["cart"], Stage.CANARY, 60, actor="t")
    feature = await writer.feature(feature_name(r["cart"]))
    assert feature is not None
    (strategy,) = writer.env_of(feature)["strategies"]
    assert strategy["parameters"]["rollout"] == "60"


async def test_the_provider_follows_flips_made_in_unleash_within_the_refresh_interval(
        unleash_server: UnleashServer, writer: UnleashAdmin, tmp_path: Path,
        started: list[UnleashServerProvider]) -> None:
    r = _names("cart")["cart"]
    provider = _provider(unleash_server, tmp_path, [r])
    started.append(provider)
    await provider.start()
    assert provider.healthy and provider.source == "server"
    assert provider.view.flag(r) == RouteFlag(Stage.LEGACY, updated_by="unleash")
    seen: list[FlagView] = []
    provider.subscribe(seen.append)
    other = _flags(writer, [r])
    ramp = [(Stage.SHADOW, 0), (Stage.CANARY, 10), (Stage.CANARY, 50), (Stage.NEW, 100),
            (Stage.COMPLETE, 100), (Stage.LEGACY, 0), (Stage.CANARY, 5), (Stage.LEGACY, 0)]
    for stage, pct in ramp:
        await other.set_route(r, stage, pct if stage is Stage.CANARY else None, actor="t")
        PROPAGATION.append(await _arrives(provider, r, stage, pct))
    assert [v.state.routes[r].stage for v in seen] == [s for s, _ in ramp]
    print(f"\nflip propagation (refresh {REFRESH_S} s), {len(PROPAGATION)} flips: "
          f"min {min(PROPAGATION):.2f} s, median {statistics.median(PROPAGATION):.2f} s, "
          f"max {max(PROPAGATION):.2f} s")


async def test_flips_through_the_provider_return_once_this_process_applies_them(
        unleash_server: UnleashServer, tmp_path: Path,
        started: list[UnleashServerProvider]) -> None:
    r = _names("cart", "checkout", "orders")
    routes = list(r.values())
    provider = _provider(unleash_server, tmp_path, routes,
                         groups={r["cart"]: "basket", r["checkout"]: "basket"})
    started.append(provider)
    await provider.start()
    change = await provider.set_route(r["cart"], Stage.CANARY, 20, actor="alice", reason="go")
    assert change.moved == (r["cart"], r["checkout"])
    assert change.before == RouteFlag(Stage.LEGACY, updated_by="unleash")
    for route in change.moved:
        assert provider.view.flag(route).same_setting(RouteFlag(Stage.CANARY, 20))
    assert provider.view.flag(r["orders"]).stage is Stage.LEGACY
    try:
        kill = await provider.set_kill(True, actor="alice")
        assert kill.after is True and provider.view.kill_switch
    finally:
        await provider.set_kill(False, actor="alice")
    assert not provider.view.kill_switch


# ---------------------------------------------------------------- SDK evaluation and metrics

async def test_canary_is_evaluated_by_the_registered_client_and_usage_reaches_unleash(
        unleash_server: UnleashServer, writer: UnleashAdmin, tmp_path: Path,
        started: list[UnleashServerProvider]) -> None:
    r = _names("cart", "orders")
    app = f"strangler-metrics-{uuid.uuid4().hex[:6]}"
    provider = _provider(unleash_server, tmp_path, list(r.values()), app=app)
    started.append(provider)
    await provider.start()
    await _flags(writer, list(r.values())).set_route(r["cart"], Stage.CANARY, 30, actor="t")
    await _arrives(provider, r["cart"], Stage.CANARY, 30)
    view = provider.view
    assert view._client is provider.client, "the registered client evaluates"
    on_new = {s for s in SESSIONS if view.in_canary(r["cart"], s)}
    assert 0.22 < len(on_new) / len(SESSIONS) < 0.38
    # the same bucket as a view bootstrapped locally (what the local provider gives)
    local = FlagView(FlagState({r["cart"]: RouteFlag(Stage.CANARY, 30)}))
    assert {s for s in SESSIONS if local.in_canary(r["cart"], s)} == on_new
    # sticky across a rebuilt view: another route moves, nobody switches sides
    await _flags(writer, list(r.values())).set_route(r["orders"], Stage.NEW, None, actor="t")
    await _arrives(provider, r["orders"], Stage.NEW, 100)
    assert provider.view is not view
    assert {s for s in SESSIONS if provider.view.in_canary(r["cart"], s)} == on_new

    await await_until(lambda: _true(unleash_server.usage(feature_name(r["cart"]), app) > 0),
                      timeout=60, interval=0.5, what="usage metrics stored by Unleash")
    await await_until(
        lambda: _true(any(i.get("instanceId") == provider.instance_id
                          for i in unleash_server.instances(app))),
        timeout=60, interval=0.5, what="the gateway registered as a client application")


# ---------------------------------------------------------------- outages

async def test_unreachable_at_start_the_last_snapshot_serves(
        unleash_server: UnleashServer, writer: UnleashAdmin, tmp_path: Path,
        started: list[UnleashServerProvider]) -> None:
    r = _names("cart", "orders", "catalog")
    routes = list(r.values())
    flags = _flags(writer, routes)
    await flags.set_route(r["cart"], Stage.CANARY, 40, actor="t")
    await flags.set_route(r["orders"], Stage.NEW, None, actor="t")
    snapshot = tmp_path / "snap" / "unleash.json"
    first = _provider(unleash_server, tmp_path, routes, snapshot=snapshot)
    await first.start()
    try:
        await _arrives(first, r["orders"], Stage.NEW, 100)
        before = {s for s in SESSIONS if first.view.in_canary(r["cart"], s)}
    finally:
        await first.stop()
    assert snapshot.exists()

    dead = f"http://127.0.0.1:{free_port()}"
    second = _provider(unleash_server, tmp_path, routes, url=dead, snapshot=snapshot)
    started.append(second)
    await second.start()
    assert second.source == "snapshot" and not second.healthy
    got = {k: (f.stage, f.percent) for k, f in second.view.state.routes.items()}
    assert got == {r["cart"]: (Stage.CANARY, 40), r["orders"]: (Stage.NEW, 100),
                   r["catalog"]: (Stage.LEGACY, 0)}
    assert {s for s in SESSIONS if second.view.in_canary(r["cart"], s)} == before


async def test_unreachable_at_start_without_a_snapshot_every_route_is_legacy(
        unleash_server: UnleashServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        started: list[UnleashServerProvider]) -> None:
    monkeypatch.setenv("UNLEASH_CLIENT_TOKEN", unleash_server.client_token)
    cfg = parse({
        "legacy": {"nodes": [{"id": "a", "url": "http://127.0.0.1:1"}]},
        "session": shop_session(),
        "new": {"instances": [{"id": "n1", "url": "http://127.0.0.1:2"}]},
        "routes": [{"name": "cart", "paths": ["/api/cart"], "stage": "new"},
                   {"name": "orders", "paths": ["/api/orders"], "stage": "canary",
                    "percent": 50},
                   {"name": "default", "paths": ["/*"], "legacy_only": True}],
        "flags": {"provider": "unleash", "unleash": {
            "url": f"http://127.0.0.1:{free_port()}", "refresh_interval_s": 1,
            "snapshot_file": str(tmp_path / "none.json")}},
    })
    provider = make_provider(cfg, aioredis.Redis())
    assert isinstance(provider, UnleashServerProvider)
    started.append(provider)
    await provider.start()
    assert provider.source == "none" and not provider.healthy
    assert {k: f.stage for k, f in provider.view.state.routes.items()} == {
        "cart": Stage.LEGACY, "orders": Stage.LEGACY}, "config.yaml's stages are not used"
    assert not provider.view.in_canary("orders", "any-session")


async def test_an_outage_keeps_the_last_flags_and_recovery_follows_the_server(
        unleash_server: UnleashServer, writer: UnleashAdmin, tmp_path: Path,
        started: list[UnleashServerProvider]) -> None:
    r = _names("cart")["cart"]
    flags = _flags(writer, [r])
    await flags.set_route(r, Stage.NEW, None, actor="t")
    proxy = FaultProxy(unleash_server.port, spare=())
    await proxy.start()
    try:
        await proxy.set(Mode.REFUSE)
        provider = _provider(unleash_server, tmp_path, [r], url=proxy.url)
        started.append(provider)
        await provider.start()  # down and no snapshot: legacy
        assert provider.source == "none" and provider.view.flag(r).stage is Stage.LEGACY
        await proxy.set(Mode.PASS)
        await await_until(lambda: _true(provider.healthy), timeout=10, what="recovery")
        await _arrives(provider, r, Stage.NEW, 100)

        await proxy.set(Mode.REFUSE)
        await await_until(lambda: _true(not provider.healthy), timeout=15,
                          what="the outage noticed")
        await flags.set_route(r, Stage.CANARY, 15, actor="t")  # made while we cannot see it
        assert provider.view.flag(r).stage is Stage.NEW, "the last flags keep serving"
        await proxy.set(Mode.PASS)
        await _arrives(provider, r, Stage.CANARY, 15)
        assert provider.healthy
    finally:
        await proxy.stop()


# ---------------------------------------------------------------- the gateway itself

class Backend:
    def __init__(self, name: str) -> None:
        self.name = name
        app = web.Application()
        app.router.add_get("/healthz", self._ok)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self.server = TestServer(app, host="127.0.0.1")

    async def _ok(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _serve(self, request: web.Request) -> web.Response:
        return web.json_response({"from": self.name})

    @property
    def url(self) -> str:
        return str(self.server.make_url(""))


@pytest.fixture
async def backends() -> AsyncIterator[dict[str, Backend]]:
    found = {"legacy": Backend("legacy"), "new": Backend("new")}
    for b in found.values():
        await b.server.start_server()
    yield found
    for b in found.values():
        await b.server.close()


async def _served_by(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url + "/api/products") as resp:
        assert resp.status == 200
        return resp.headers.get("X-Strangler-Backend", "")


async def test_the_gateway_follows_unleash(
        unleash_server: UnleashServer, writer: UnleashAdmin, tmp_path: Path,
        redis_url: str, key_prefix: str, keypair: KeyPair,
        backends: dict[str, Backend], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNLEASH_TEST_CLIENT_TOKEN", unleash_server.client_token)
    monkeypatch.setenv("UNLEASH_TEST_ADMIN_TOKEN", unleash_server.admin_token)
    route = _names("catalog")["catalog"]
    harness = GatewayHarness(
        redis_url, key_prefix, keypair, legacy={"a": backends["legacy"].url},
        new={"n1": backends["new"].url},
        routes=[{"name": route, "paths": ["/api/products"], "stage": "new"},
                {"name": "default", "paths": ["/*"], "legacy_only": True}],
        extra={"flags": {"provider": "unleash", "unleash": {
            "url": unleash_server.url, "refresh_interval_s": REFRESH_S,
            "metrics_interval_s": 1, "snapshot_file": str(tmp_path / "gw-snapshot.json"),
            "client_token": {"env": "UNLEASH_TEST_CLIENT_TOKEN"},
            "admin_token": {"env": "UNLEASH_TEST_ADMIN_TOKEN"}}}})
    await harness.start()
    try:
        # the server holds no feature for the route yet: legacy, whatever config.yaml says
        assert (await _served_by(harness.url)).startswith("legacy")
        await _flags(writer, [route]).set_route(route, Stage.NEW, None, actor="t")
        t0 = time.monotonic()
        await await_until(lambda: _starts(_served_by(harness.url), "new"),
                          timeout=FLIP_DEADLINE_S, what="the gateway to serve from new")
        PROPAGATION.append(time.monotonic() - t0)

        # the gateway's own admin API writes to Unleash, and answers once it applies it
        async with aiohttp.ClientSession() as http, http.put(
                f"{harness.admin_url}/api/routes/{route}", json={"stage": "legacy"},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["stage"] == "legacy"
        assert (await _served_by(harness.url)).startswith("legacy")
        feature = await writer.feature(feature_name(route))
        assert feature is not None and writer.env_of(feature)["enabled"] is False
    finally:
        await harness.stop()
    assert (tmp_path / "gw-snapshot.json").exists()


async def _starts(reply: Any, prefix: str) -> bool:
    return str(await reply).startswith(prefix)


# ---------------------------------------------------------------- the CLI

@pytest.fixture
def cli_config(tmp_path: Path,
               unleash_server: UnleashServer) -> Iterator[tuple[Path, dict[str, str]]]:
    r = _names("cart", "checkout")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"},
        "legacy": {"nodes": [{"id": "a", "url": "http://127.0.0.1:1"}]},
        "session": shop_session(),
        "new": {"instances": [{"id": "n1", "url": "http://127.0.0.1:2"}]},
        "routes": [{"name": r["cart"], "paths": ["/api/cart"]},
                   {"name": r["checkout"], "paths": ["/api/checkout"]},
                   {"name": "default", "paths": ["/*"], "legacy_only": True}],
        "flags": {"provider": "unleash", "unleash": {"url": unleash_server.url}},
    }))
    yield path, r


def _cli(config: Path, *args: str, token: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNLEASH_")}
    if token:
        env["UNLEASH_ADMIN_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "strangler", "--config", str(config),
                           "flags", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


async def test_strangler_flags_set_kill_list_against_unleash(
        unleash_server: UnleashServer, writer: UnleashAdmin,
        cli_config: tuple[Path, dict[str, str]]) -> None:
    config, r = cli_config
    token = unleash_server.admin_token
    out = _cli(config, "set", r["cart"], "canary", "--percent", "20", "--reason", "ramp",
               token=token)
    assert out.returncode == 0, out.stderr
    assert f"{r['cart']}: legacy -> canary 20%" in out.stdout
    feature = await writer.feature(feature_name(r["cart"]))
    assert feature is not None
    env = writer.env_of(feature)
    assert env["enabled"] and env["strategies"][0]["parameters"]["rollout"] == "20"

    listed = _cli(config, "list", token=token)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split()[1:3] for line in listed.stdout.splitlines()
            if line.split() and line.split()[0] in r.values()}
    assert rows == {r["cart"]: ["canary", "20"], r["checkout"]: ["legacy", "0"]}

    try:
        on = _cli(config, "kill", "on", "--reason", "drill", token=token)
        assert on.returncode == 0, on.stderr
        assert "kill switch: ON" in on.stdout
        kill = await writer.feature(KILL_SWITCH_FEATURE)
        assert kill is not None and writer.env_of(kill)["enabled"] is True
    finally:
        off = _cli(config, "kill", "off", token=token)
    assert off.returncode == 0, off.stderr
    kill = await writer.feature(KILL_SWITCH_FEATURE)
    assert kill is not None and writer.env_of(kill)["enabled"] is False

    reset = _cli(config, "reset", token=token)
    assert reset.returncode == 2 and "local provider" in reset.stderr
    bad = _cli(config, "set", r["cart"], "canary", "--percent", "101", token=token)
    assert bad.returncode == 2 and "percent" in bad.stderr
    untokened = _cli(config, "set", r["cart"], "new", token=None)
    assert untokened.returncode == 2 and "flags.unleash.admin_token" in untokened.stderr
    feature = await writer.feature(feature_name(r["cart"]))
    assert feature is not None
    assert writer.env_of(feature)["strategies"][0]["parameters"]["rollout"] == "20"
