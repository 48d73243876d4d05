"""Scenario H, the hot path: a fast upstream, so the proxy in front of it is the bottleneck.

The demo backends cost 1.5-2 ms of CPU a request, so in scenarios A and B
every proxy waits on them. Here nginx stands in for both backends: it answers
with the bytes the real legacy node gave for the benchmark user's
``GET /api/cart`` (body and session headers, captured once), on one port as
legacy node ``a`` and on another as new instance ``n1``, and answers
``GET /healthz`` exactly as the real ones do (the node's ``boot_id`` included,
so the session record in Redis still matches). It runs on the load core; the
proxy under test alone on the proxy core.

The gateway measured here is a second gateway process whose config equals the
stack's (same Redis prefix, token keys, node and instance ids) except that
the node and instance URLs point at nginx, so the session the user logged in
with through the real stack is the one it bridges.

Rows, all on that same upstream: direct; nginx as reverse proxy; the plain
aiohttp proxy; the lean proxy (asyncio protocols and httptools, the floor for
Python); the gateway with the route at legacy (session), at new (session), and
an anonymous legacy GET; then ``--workers 2`` against one worker, and an open
loop at half the gateway's saturating rate. Each proxy's memory rows
(``bench.memory``: RSS at rest, KiB per idle keep-alive connection) are taken
right after its CPU rows, while it is still running.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from bench import loadgen, memory, nginx, spy, sysstat
from bench.measure import Meter, Row, Target
from bench.memory import Memory
from bench.rig import Login, Rig, pid, wait_for_stage
from testkit.net import free_port, wait_until
from testkit.procs import Proc, http_ok

SCENARIO = "H hot path"
OPEN = "H half load"
WORKERS = "H workers"
CART = "/api/cart"
"""The shop's measured path (``rig.App.path`` for the app of the run). The anonymous path
(``App.anon_path``: the shop's catalog, the notes app's legacy-only ``/about``) has no
session, so no session bridge work; nginx answers it with the same bytes (without session
headers), so only the proxy's work differs."""
IDLE_KEEPALIVE_MS = 600_000
"""The measured gateway's ``limits.keepalive_idle_ms``: the memory rows' idle connections
must outlive their steps (the default, a minute, is close to a slow run's)."""
_NOT_REPLAYED = frozenset({"date", "server", "content-length", "connection", "keep-alive",
                           "transfer-encoding", "content-type", "x-request-id"})
"""Headers nginx sets itself, or that belong to one response only (the request id)."""


@dataclass(frozen=True)
class Captured:
    """What the real backends answered, served back by nginx."""

    cart: nginx.Fixed
    """Legacy's answer to the user's measured GET (the shop's ``/api/cart``): the body
    and its session headers."""
    legacy_health: nginx.Fixed
    new_health: nginx.Fixed

    def describe(self) -> dict[str, Any]:
        return {"cart_bytes": len(self.cart.body), "cart_headers": sorted(self.cart.headers),
                "legacy_health": self.legacy_health.body.decode(),
                "new_health": self.new_health.body.decode()}


def _fetch(url: str, headers: dict[str, str]) -> nginx.Fixed:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as resp:
        if resp.status != 200:
            raise RuntimeError(f"capturing {url}: status {resp.status}")
        body = resp.read()
        kept = {k: v for k, v in resp.headers.items() if k.lower() not in _NOT_REPLAYED}
        return nginx.Fixed(body, resp.headers.get("Content-Type", "application/json"), kept)


def capture(rig: Rig, login: Login) -> Captured:
    legacy, new = rig.legacy_url(), rig.new_url()
    return Captured(cart=_fetch(legacy + rig.app.path, {"Cookie": login.cookie}),
                    legacy_health=_fetch(legacy + "/healthz", {}),
                    new_health=_fetch(new + "/healthz", {}))


def workers_supported() -> bool:
    out = subprocess.run([sys.executable, "-m", "strangler", "gateway", "--help"],
                         capture_output=True, text=True, check=False)
    return "--workers" in out.stdout


@dataclass
class HotPath:
    """nginx as both backends, and gateways pointed at it."""

    rig: Rig
    login: Login
    directory: Path
    captured: Captured | None = None
    legacy_port: int = field(default_factory=free_port)
    new_port: int = field(default_factory=free_port)
    upstream: nginx.Nginx | None = None
    idle_max: int = 0
    """The most idle client connections the memory rows hold open at once."""

    @property
    def connections(self) -> int:
        """The connection cap of the gateway (``limits.max_connections``) and the nginx
        proxy (``worker_connections``): both default to 4096; the memory rows need their
        idle connections plus room for the load's and the helper's."""
        return max(4096, self.idle_max + 1024)

    @property
    def limits(self) -> dict[str, int]:
        """The measured gateway's ``gateway.limits`` beyond the stack's."""
        return {"max_connections": self.connections, "keepalive_idle_ms": IDLE_KEEPALIVE_MS}

    @property
    def legacy_url(self) -> str:
        return f"http://127.0.0.1:{self.legacy_port}"

    @property
    def new_url(self) -> str:
        return f"http://127.0.0.1:{self.new_port}"

    @property
    def upstream_pid(self) -> int:
        assert self.upstream is not None
        return self.upstream.pid

    @contextlib.contextmanager
    def running(self) -> Iterator[HotPath]:
        """Capture the real answers, then serve them from nginx on the load core."""
        self.captured = cap = capture(self.rig, self.login)
        # The same bytes without legacy's session headers: what new answers, and the
        # anonymous path (legacy stamps none without a session). One body in every row,
        # so rows differ only in the proxy's work.
        bare = replace(cap.cart, headers={})
        sites = {
            self.legacy_port: nginx.Site(cap.cart, {"/healthz": cap.legacy_health,
                                                    self.rig.app.anon_path: bare}),
            self.new_port: nginx.Site(bare, {"/healthz": cap.new_health}),
        }
        conf = nginx.upstream_conf(self.directory / "nginx-upstream", sites)
        with nginx.running("nginx-upstream", self.directory / "nginx-upstream", conf,
                           f"{self.legacy_url}/healthz", self.rig.cores.other) as server:
            self.upstream = server
            try:
                yield self
            finally:
                self.upstream = None

    def config(self) -> dict[str, Any]:
        """The stack's config with the legacy node and new instance URLs on nginx, and
        connection limits that let the memory rows' idle connections in and keep them."""
        config = self.rig.stack.config()
        config["gateway"]["limits"] = {**config["gateway"].get("limits", {}), **self.limits}
        node, inst = self.rig.legacy_node[0], self.rig.new_instance[0]
        config["legacy"]["nodes"] = [{**n, "url": self.legacy_url}
                                     for n in config["legacy"]["nodes"] if n["id"] == node]
        config["new"]["instances"] = [{**i, "url": self.new_url}
                                      for i in config["new"]["instances"] if i["id"] == inst]
        return config

    @contextlib.contextmanager
    def gateway(self, workers: int | None = None, pinned: bool = True
                ) -> Iterator[tuple[str, str, int, tuple[str, ...]]]:
        """(url, admin url, supervisor-or-only pid, per-worker admin urls)."""
        stack = self.rig.stack
        port, admin_port = free_port(), free_port()
        name = "gateway-hot" + (f"-w{workers}" if workers else "")
        path = stack.dir / f"config-{name}.yaml"
        path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        argv = [sys.executable, "-m", "strangler", "--config", str(path), "gateway",
                "--port", str(port), "--admin-port", str(admin_port)]
        worker_admins: tuple[str, ...] = ()
        if workers == 1:
            argv += ["--workers", "1"]  # one process, no supervisor: the shared admin port
        elif workers:
            base = free_port_block(workers)
            argv += ["--workers", str(workers), "--worker-admin-ports", str(base)]
            worker_admins = tuple(f"http://127.0.0.1:{base + i}" for i in range(workers))
        admin = f"http://127.0.0.1:{admin_port}"
        proc = Proc(name, argv, stack.dir / "logs", env=stack.env, ready_url=f"{admin}/readyz")
        self.rig.extra.append(proc)
        try:
            proc.start(timeout=60)
            for url in worker_admins:  # the shared port answers as soon as one worker is up
                _wait_ready(url)
            if pinned and self.rig.cores.proxy is not None:
                for member in sysstat.process_tree(pid(proc)):
                    sysstat.pin(member, {self.rig.cores.proxy})
            yield f"http://127.0.0.1:{port}", admin, pid(proc), worker_admins
        finally:
            proc.stop(timeout=10)
            self.rig.extra.remove(proc)

    @contextlib.contextmanager
    def nginx_proxy(self) -> Iterator[tuple[str, int]]:
        port = free_port()
        directory = self.directory / "nginx-proxy"
        conf = nginx.proxy_conf(directory, port, self.legacy_url, self.connections)
        with nginx.running("nginx-proxy", directory, conf, f"http://127.0.0.1:{port}/healthz",
                           self.rig.cores.proxy) as server:
            yield f"http://127.0.0.1:{port}", server.pid


def _wait_ready(admin: str) -> None:
    wait_until(lambda: http_ok(f"{admin}/readyz"), timeout=60, what=f"gateway worker {admin}")


def free_port_block(n: int) -> int:
    """A base port with ``n`` consecutive free ports (per-worker admin listeners)."""
    for _ in range(50):
        base = free_port()
        if base + n < 65536 and all(_port_free(base + i) for i in range(1, n)):
            return base
    raise RuntimeError(f"no {n} consecutive free ports")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------- rows
@dataclass(frozen=True)
class Options:
    open_rate: float | None = None
    """Open-loop rate; default half the gateway's saturating rate (legacy, session)."""
    profile_seconds: float = 10.0
    """py-spy on the gateway under the legacy-with-session load; 0: no profile."""
    workers: int = 2
    idle_steps: tuple[int, ...] = (1000, 5000)
    """Idle keep-alive connections held for the memory rows, cumulative; empty: none."""


@dataclass
class Extras:
    """What scenario H finds besides rows: the profile, the workers verdict, the capture."""

    captured: dict[str, Any] = field(default_factory=dict)
    profile: spy.Profile | None = None
    profile_skipped: str | None = None
    workers_skipped: str | None = None
    open_rate: float | None = None
    rounds: list[list[Row]] = field(default_factory=list)
    """With ``--rounds N``: each round's H rows, for the targets' per-round ratios."""
    memory: list[Memory] = field(default_factory=list)
    """Each proxy's RSS at rest and with idle connections (the last round only)."""
    limits: dict[str, int] = field(default_factory=dict)
    """What the measured gateway's ``gateway.limits`` set (``max_connections`` is the
    nginx proxy's ``worker_connections`` too)."""

    def as_dict(self) -> dict[str, Any]:
        prof = self.profile
        return {"captured": self.captured, "open_rate": self.open_rate,
                "memory": [m.as_dict() for m in self.memory],
                "gateway_limits": self.limits,
                "workers_skipped": self.workers_skipped,
                "profile_skipped": self.profile_skipped,
                "profile": None if prof is None else {
                    "seconds": prof.seconds, "rate": prof.rate, "samples": prof.total,
                    "output": str(prof.output), "top": prof.top(20)}}


PINNING = ("proxy under test (gateway, plain proxy, lean proxy, nginx proxy) alone on core "
           "{proxy}; nginx upstream (1 worker), load generator and the memory rows' idle "
           "clients on core {other}. Rows `gateway "
           "--workers N`: the gateway's supervisor and workers unpinned (both cores, shared "
           "with the load generator and the upstream), since N processes cannot share one "
           "core; the 1-worker row is unpinned too, so the two compare like for like")


def run(rig: Rig, meter: Meter, login: Login, opts: Options, extras: Extras,
        directory: Path) -> Iterator[Row]:
    """Scenario H from start to end: capture, nginx up, rows, nginx down."""
    hot = HotPath(rig, login, directory, idle_max=max(opts.idle_steps, default=0))
    extras.limits = hot.limits
    with hot.running():
        yield from scenario_h(rig, meter, login, hot, opts, extras)


def scenario_h(rig: Rig, meter: Meter, login: Login, hot: HotPath, opts: Options,
               extras: Extras) -> Iterator[Row]:
    assert hot.captured is not None
    cap = hot.captured
    extras.captured = cap.describe()
    session = {"Cookie": login.cookie}
    up = hot.upstream_pid
    app = rig.app
    cart = hot.legacy_url + app.path

    def fixed(name: str, kind: str, url: str, measured: int, body: bytes = cap.cart.body,
              headers: dict[str, str] | None = None, scenario: str = SCENARIO,
              rate: float | None = None) -> Target:
        return Target(scenario, name, kind, url, session if headers is None else headers,
                      measured, up, expect_body=body, rate=rate)

    def memory_rows(name: str, measured: int, url: str) -> None:
        _memory(hot, opts, extras, name, measured, url, session)

    yield meter.measure(fixed("direct (nginx upstream)", "direct", cart, up))
    with hot.nginx_proxy() as (url, proxy):
        yield meter.measure(fixed("nginx proxy", "nginx", url + app.path, proxy))
        memory_rows("nginx proxy", proxy, url + app.path)
    with rig.plain_proxy(hot.legacy_url) as (url, proc):
        yield meter.measure(fixed("plain proxy", "plain", url + app.path, pid(proc)))
        memory_rows("plain proxy", pid(proc), url + app.path)
    with rig.plain_proxy(hot.legacy_url, "bench.lean_proxy") as (url, proc):
        yield meter.measure(fixed("lean proxy", "lean", url + app.path, pid(proc)))
        memory_rows("lean proxy", pid(proc), url + app.path)

    saturating: Row | None = None
    with hot.gateway() as (url, admin, gw, _):
        def gateway(name: str, path: str, route: str, backend: str, headers: dict[str, str],
                    body: bytes, redis: float) -> Target:
            return replace(fixed(name, "gateway", url + path, gw, body, headers),
                           admin_url=admin, expect_route=route, expect_backend=backend,
                           max_redis_per_req=redis)

        wait_for_stage(admin, app.route, "legacy")
        saturating = meter.measure(gateway("gateway, legacy, session", app.path, app.route,
                                           "legacy", session, cap.cart.body, 1))
        yield saturating
        yield meter.measure(gateway("gateway, legacy, no session", app.anon_path,
                                    app.anon_route, "legacy", {}, cap.cart.body, 0))
        rig.set_stage(app.route, "new")
        try:
            wait_for_stage(admin, app.route, "new")
            yield meter.measure(gateway("gateway, new, session", app.path, app.route, "new",
                                        session, cap.cart.body, 1))
        finally:
            rig.set_stage(app.route, "legacy")
        wait_for_stage(admin, app.route, "legacy")
        memory_rows("gateway, legacy, session", gw, url + app.path)
        if opts.profile_seconds > 0:
            extras.profile, extras.profile_skipped = _profile(rig, meter, url + app.path,
                                                              session, gw,
                                                              opts.profile_seconds)

    yield from _workers(rig, meter, hot, login, opts.workers, cap.cart.body, extras)
    yield from _half_load(rig, meter, hot, login, opts, saturating, extras)


def _memory(hot: HotPath, opts: Options, extras: Extras, name: str, measured: int, url: str,
            headers: dict[str, str]) -> None:
    """One proxy's memory rows, right after its CPU rows: warm, and idle now."""
    if not opts.idle_steps:
        return
    found = memory.measure(name, measured, url, headers, opts.idle_steps,
                           hot.rig.cores.other, hot.directory / "idle-clients.log")
    extras.memory.append(found)
    print(f"  {'H memory':11} {name:28} {found.summary()}", file=sys.stderr)


def _profile(rig: Rig, meter: Meter, url: str, headers: dict[str, str], gw: int,
             seconds: float) -> tuple[spy.Profile | None, str | None]:
    if spy.py_spy() is None:
        return None, "py-spy not installed (.venv/bin/pip install py-spy)"
    spec = loadgen.LoadSpec(url, headers, meter.settings.connections, seconds + 2,
                            meter.settings.load_core, meter.settings.tool)
    output = Path(__file__).with_name("out") / "hot-gateway.collapsed.txt"
    output.parent.mkdir(exist_ok=True)
    try:
        return spy.record(gw, loadgen.command(spec), spec.duration_s, seconds, output,
                          core=rig.cores.other), None
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        return None, f"py-spy failed: {exc}"


def _workers(rig: Rig, meter: Meter, hot: HotPath, login: Login, n: int, body: bytes,
             extras: Extras) -> Iterator[Row]:
    """One worker against ``n``, both unpinned: ``n`` processes cannot share one core."""
    if not workers_supported():
        extras.workers_skipped = "skipped: gateway has no --workers"
        return
    session = {"Cookie": login.cookie}
    for count in (1, n):
        with hot.gateway(workers=count, pinned=False) as (url, admin, gw, admins):
            wait_for_stage(admin, rig.app.route, "legacy")
            yield meter.measure(Target(
                WORKERS, f"gateway --workers {count}", "gateway", url + rig.app.path, session,
                gw, hot.upstream_pid, admin_url=admin, worker_admin_urls=admins,
                expect_backend="legacy", expect_route=rig.app.route, expect_body=body,
                max_redis_per_req=1))


def _half_load(rig: Rig, meter: Meter, hot: HotPath, login: Login, opts: Options,
               saturating: Row | None, extras: Extras) -> Iterator[Row]:
    rate = opts.open_rate or (round(saturating.rps / 2) if saturating else None)
    if not rate:
        return
    extras.open_rate = rate
    session = {"Cookie": login.cookie}
    up = hot.upstream_pid
    body = hot.captured.cart.body if hot.captured else b""

    def at(name: str, kind: str, url: str, measured: int, **more: Any) -> Target:
        return Target(OPEN, name, kind, url + rig.app.path, session, measured, up, rate=rate,
                      expect_body=body, expect_route=rig.app.route, **more)

    yield meter.measure(at("direct (nginx upstream)", "direct", hot.legacy_url, up))
    with rig.plain_proxy(hot.legacy_url) as (url, proc):
        yield meter.measure(at("plain proxy", "plain", url, pid(proc)))
    with hot.gateway() as (url, admin, gw, _):
        wait_for_stage(admin, rig.app.route, "legacy")
        yield meter.measure(at("gateway, legacy, session", "gateway", url, gw,
                               admin_url=admin, expect_backend="legacy", max_redis_per_req=1))
