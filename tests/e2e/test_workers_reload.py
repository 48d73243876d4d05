"""Scale out and stay up, end to end: ``--workers``, graceful shutdown, config reload.

Real processes: legacy nodes, a new-services instance and the gateway (a
supervisor and its workers), against the real Redis. Which worker served is
read from each worker's own admin port (``--worker-admin-ports``) and from
the gateway's JSON log, where every line of a worker carries its index.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support.faultproxy import FaultProxy, Mode
from tests.support.lifecycle import print_logs_if_failed
from tests.support.net import await_until, free_port, port_open, wait_until
from tests.support.procs import ROOT, Proc, http_ok
from tests.support.stack import Stack


class OpsStack(Stack):
    """A ``Stack`` whose gateway is started by the test, with any arguments, and whose
    legacy nodes may be reached through a proxy port (``fronts``)."""

    def __init__(self, workdir: Path, redis_url: str, **kwargs: Any) -> None:
        self.fronts: dict[str, int] = {}
        super().__init__(workdir, redis_url, **kwargs)
        self.legacy = {n: self._proc(f"legacy-{n}", ["legacy", "--node-id", n, "--port", str(p)],
                                     f"http://127.0.0.1:{p}/healthz")
                       for n, p in self.legacy_ports.items()}
        self.gateways = []
        self.port, self.admin_port = self.gateway_ports[0]

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        for node in cfg["legacy"]["nodes"]:
            if node["id"] in self.fronts:
                node["url"] = f"http://127.0.0.1:{self.fronts[node['id']]}"
        return cfg

    def edit(self, change: Any) -> None:
        """Rewrite config.yaml with ``change(config_dict)`` applied (as an operator would)."""
        cfg = copy.deepcopy(self.config())  # config() shares self.routes
        change(cfg)
        self.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def gateway(self, *args: str) -> Proc:
        proc = self._proc("gateway", ["gateway", "--port", str(self.port),
                                      "--admin-port", str(self.admin_port), *args],
                          f"http://127.0.0.1:{self.admin_port}/readyz")
        self.gateways = [proc]
        return proc.start(timeout=30)


def events(proc: Proc, name: str) -> list[dict[str, Any]]:
    out = []
    for line in proc.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            event = json.loads(line)
            if event.get("event") == name:
                out.append(event)
    return out


def served(admin_url: str) -> float:
    """Requests this worker's /metrics has counted."""
    with urllib.request.urlopen(admin_url + "/metrics", timeout=2) as resp:  # noqa: S310
        text = resp.read().decode()
    return sum(float(v) for v in re.findall(r"^strangler_requests_total\{[^}]*\} (\S+)$",
                                            text, re.M))


async def get(url: str) -> tuple[int, Any]:
    """One request on a fresh connection, so the kernel picks a worker each time."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                     timeout=aiohttp.ClientTimeout(total=20)) as http, \
            http.get(url) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.fixture
def ops(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Iterator[OpsStack]:
    s = OpsStack(tmp_path / "stack", redis_url, legacy_nodes=2, new_instances=1,
                 **getattr(request, "param", {}))
    try:
        s.init_db()
        for proc in [*s.legacy.values(), *s.new.values()]:
            proc.start(timeout=30)
        yield s
    finally:
        s.stop()
        print_logs_if_failed(s, request)


def _pid_alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


async def test_two_workers_share_one_port_and_a_dead_worker_is_replaced(ops: OpsStack) -> None:
    base = free_port()
    while port_open(base + 1):
        base = free_port()
    gw = ops.gateway("--workers", "2", "--worker-admin-ports", str(base))
    own = [f"http://127.0.0.1:{base + i}" for i in range(2)]
    for url in own:
        wait_until(lambda u=url: http_ok(u + "/readyz"), timeout=30, what=f"worker at {url}")
    products = f"http://127.0.0.1:{ops.port}/api/products"

    async def both_served() -> bool:
        for _ in range(10):
            assert (await get(products))[0] == 200
        return all(served(url) > 0 for url in own)
    await await_until(both_served, timeout=30, what="both workers to accept connections")
    assert {e["worker"] for e in events(gw, "backend_decided")} == {0, 1}

    victim = next(e["pid"] for e in events(gw, "worker_ready") if e["worker"] == 0)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: not _pid_alive(victim), what="worker 0 to die")
    for _ in range(40):  # its socket is gone: every new connection lands on worker 1
        status, _ = await get(products)
        assert status == 200

    def restarted() -> list[dict[str, Any]]:
        return [e for e in events(gw, "worker_restarted") if e["worker"] == 0]
    wait_until(restarted, timeout=30, what="worker 0 to be restarted")
    assert restarted()[0]["pid"] != victim
    exits = [e for e in events(gw, "worker_exited") if e["worker"] == 0]
    assert exits[0]["signal"] == "SIGKILL" and exits[0]["restart_in_s"] > 0

    async def replacement_serves() -> bool:
        for _ in range(10):
            assert (await get(products))[0] == 200
        return served(own[0]) > 0
    await await_until(replacement_serves, timeout=30, what="the new worker 0 to serve")

    assert gw.popen is not None
    gw.popen.send_signal(signal.SIGTERM)
    assert gw.popen.wait(timeout=30) == 0
    assert not port_open(ops.port)
    assert {e["worker"] for e in events(gw, "gateway_stopped")} >= {0, 1}


def test_workers_refuse_to_start_on_a_taken_port_naming_the_key(tmp_path: Path,
                                                                redis_url: str) -> None:
    s = OpsStack(tmp_path / "stack", redis_url)
    with socket.create_server(("127.0.0.1", s.port)):
        result = subprocess.run(
            [sys.executable, "-m", "strangler", "--config", str(s.config_path), "gateway",
             "--workers", "2"], cwd=ROOT, env={**os.environ, **s.env}, capture_output=True,
            text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert f"gateway.listen: cannot listen on 127.0.0.1:{s.port}" in result.stderr
    assert not port_open(s.admin_port), "nothing was started"


@pytest.fixture
async def slow_legacy(tmp_path: Path, redis_url: str,
                      request: pytest.FixtureRequest) -> AsyncIterator[tuple[OpsStack, FaultProxy]]:
    s = OpsStack(tmp_path / "stack", redis_url, legacy_nodes=1, new_instances=1,
                 gateway_overrides={"shutdown": {"drain_s": 1.0, "timeout_s": 20},
                                    "timeouts": {"connect_ms": 500, "request_ms": 10_000}})
    proxy = await FaultProxy(s.legacy_ports["a"]).start()
    s.fronts["a"] = proxy.port
    s.write_config()
    try:
        s.init_db()
        for proc in [*s.legacy.values(), *s.new.values()]:
            await asyncio.to_thread(proc.start, 30)
        yield s, proxy
    finally:
        await asyncio.to_thread(s.stop)
        await proxy.stop()
        print_logs_if_failed(s, request)


async def test_sigterm_turns_readiness_off_first_and_lets_slow_requests_finish(
        slow_legacy: tuple[OpsStack, FaultProxy]) -> None:
    ops, proxy = slow_legacy
    gw = await asyncio.to_thread(ops.gateway)
    await proxy.set(Mode.SLOW_HEADERS, delay=4.0)
    url = f"http://127.0.0.1:{ops.port}/api/products"
    slow = [asyncio.create_task(get(url)) for _ in range(4)]
    await await_until(lambda: _at_least(proxy.hits, 4), what="4 requests held by legacy")

    assert gw.popen is not None
    gw.popen.send_signal(signal.SIGTERM)

    async def not_ready() -> bool:
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{ops.admin_port}/readyz") as resp:
            return resp.status == 503 and (await resp.json())["status"] == "shutting_down"
    await await_until(not_ready, timeout=5, what="readyz to say shutting_down")
    await await_until(lambda: _at_least(int(not port_open(ops.port)), 1), timeout=10,
                      what="the proxy listener to close after the drain")
    assert not any(t.done() for t in slow), "in flight while the listener closed"

    results = await asyncio.gather(*slow)
    assert [status for status, _ in results] == [200] * 4
    assert await asyncio.to_thread(gw.popen.wait, 30) == 0
    drained = events(gw, "requests_drained")
    assert drained and drained[0]["cut"] == 0
    assert events(gw, "shutdown_started")[0]["in_flight"] == 4


async def _at_least(value: int, n: int) -> bool:
    return value >= n


async def test_reload_by_admin_api_and_sighup_reaches_every_worker(ops: OpsStack) -> None:
    base = free_port()
    while port_open(base + 1):
        base = free_port()
    gw = await asyncio.to_thread(ops.gateway, "--workers", "2", "--worker-admin-ports",
                                 str(base))
    own = [f"http://127.0.0.1:{base + i}" for i in range(2)]
    for url in own:
        await asyncio.to_thread(wait_until, lambda u=url: http_ok(u + "/readyz"), timeout=30)
    admin = f"http://127.0.0.1:{ops.admin_port}"
    token = {"Authorization": f"Bearer {ops.admin_token}"}

    async def reload(headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as http, \
                http.post(admin + "/api/reload", headers=headers) as resp:
            return resp.status, await resp.json()

    async def routes_everywhere() -> list[set[str]]:
        out = []
        async with aiohttp.ClientSession() as http:
            for url in own:
                async with http.get(url + "/api/routes") as resp:
                    out.append({r["name"] for r in (await resp.json())["routes"]})
        return out

    # a valid change through the admin API: applied, and passed on to the other worker
    ops.edit(lambda c: c["routes"].insert(0, {"name": "reports", "paths": ["/reports/*"],
                                              "legacy_only": True}))
    status, body = await reload(token)
    assert status == 200 and body["status"] in ("applied", "unchanged"), body

    async def both_have_reports() -> bool:
        return all("reports" in names for names in await routes_everywhere())
    await await_until(both_have_reports, timeout=10, what="every worker to route /reports")

    # an invalid file: refused with the key, the old config keeps serving
    ops.edit(lambda c: (c["routes"].insert(0, {"name": "reports", "paths": ["/reports/*"],
                                               "legacy_only": True}),
                        c["routes"][1].update(fallbak={})))
    status, body = await reload(token)
    assert status == 422 and "routes[1].fallbak: unknown key" in body["detail"], body
    assert (await reload({"Authorization": "Bearer wrong"}))[0] == 401
    assert (await reload({}))[0] == 401
    assert (await get(f"http://127.0.0.1:{ops.port}/api/products"))[0] == 200

    assert gw.popen is not None
    gw.popen.send_signal(signal.SIGHUP)

    def refused_by_both() -> bool:
        found = [e for e in events(gw, "config_reload_refused") if e["trigger"] == "sighup"]
        return {e["worker"] for e in found} == {0, 1} and all(
            "routes[1].fallbak: unknown key" in e["reason"] for e in found)
    await asyncio.to_thread(wait_until, refused_by_both, timeout=10)
    assert all("reports" in names for names in await routes_everywhere())

    # a valid change by SIGHUP: the route goes away on every worker
    ops.edit(lambda c: None)
    gw.popen.send_signal(signal.SIGHUP)

    async def none_has_reports() -> bool:
        return all("reports" not in names for names in await routes_everywhere())
    await await_until(none_has_reports, timeout=10, what="every worker to drop /reports")
    applied = [e for e in events(gw, "config_reloaded") if e["trigger"] == "sighup"]
    assert {e["worker"] for e in applied} == {0, 1}
