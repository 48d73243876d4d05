"""The system under test: a real Strangler stack plus the bench's own side processes.

Reuses ``testkit.stack.Stack`` (one legacy node, one new instance, one
gateway as real processes on free ports, the shared Redis, a SQLite file),
logs a user in through the gateway, and starts on demand the plain proxy and
extra gateways with another log level, all pinned to the proxy core.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from adapters.claims import Identity
from adapters.wire import AFFINITY_COOKIE, IDENTITY_HEADER, SESSION_COOKIE, SYNC_COOKIE
from bench import sysstat
from gateway.session.tokens import TokenMinter
from gateway.settings import TokensSection
from testkit.net import free_port, wait_until
from testkit.procs import Proc
from testkit.shop import Admin, ShopUser, cart_lines
from testkit.stack import Stack

# (testkit.notes_stack is imported only for ``--app notes``: it installs the Node
# service's packages on first use.)

CART_ITEMS = {3: 2, 5: 1}
"""What the benchmark user's cart holds: every measured GET /api/cart returns it."""


@dataclass(frozen=True)
class App:
    """The monolith a run measures, as scenario H needs to know it: its session cookie,
    the GET that reads a session (``path``, on route ``route``) and one that touches
    none (``anon_path``, on ``anon_route``, at legacy)."""

    name: str
    cookie: str
    path: str
    route: str
    anon_path: str
    anon_route: str


SHOP = App("shop", SESSION_COOKIE, "/api/cart", "cart", "/api/products", "catalog")
NOTES = App("notes", "sessionid", "/api/state", "state", "/about", "default")
"""The second monolith (tests/apps/notes): its own cookie, string user ids, a session of
preferences, tags, counters and a draft; its new side in Node. ``/about`` is on the
legacy-only default route."""
APPS = {a.name: a for a in (SHOP, NOTES)}
NOTES_STATE: dict[str, Any] = {"prefs": {"theme": "dark", "lang": "en"}, "tags": ["home", "work"],
               "visits": {"docs": 2}, "draft": "bench"}
"""What the notes benchmark user's session holds: every measured GET /api/state shows it."""

_METRIC = re.compile(r'^strangler_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$')
_SHADOW_METRIC = re.compile(r'^strangler_shadow_(?P<kind>comparisons|noise_comparisons)_total'
                            r'\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$')


@dataclass(frozen=True)
class Login:
    sid: str
    user_id: int | str
    username: str
    node: str
    sync: str = ""
    """The gateway's strangler_sync cookie, as the browser got it."""
    cookie_name: str = SESSION_COOKIE

    @property
    def cookie(self) -> str:
        """What a browser sends back: every cookie it holds for the site."""
        sync = f"; {SYNC_COOKIE}={self.sync}" if self.sync else ""
        return f"{self.cookie_name}={self.sid}; {AFFINITY_COOKIE}={self.node}{sync}"


@dataclass(frozen=True)
class Cores:
    proxy: int | None
    other: int | None
    """Load generator and upstream processes."""


class Rig:
    def __init__(self, workdir: Path, redis_url: str, cores: Cores, app: App = SHOP) -> None:
        self.cores = cores
        self.app = app
        overrides = {"debug_backend_header": False, "log_level": "info"}
        if app is NOTES:
            from testkit.notes_stack import NotesStack
            self.stack: Stack = NotesStack(workdir, redis_url, legacy_nodes=1, new_instances=1,
                                           gateways=1, gateway_overrides=overrides)
        else:
            self.stack = Stack(workdir, redis_url, legacy_nodes=1, new_instances=1, gateways=1,
                               gateway_overrides=overrides)
        self.extra: list[Proc] = []

    # ------------------------------------------------------------ lifecycle
    def start(self) -> Rig:
        self.stack.start()
        self._pin(self.stack.gateways[0], self.cores.proxy)
        for proc in [*self.stack.legacy.values(), *self.stack.new.values()]:
            self._pin(proc, self.cores.other)
        return self

    def stop(self) -> None:
        for proc in self.extra:
            proc.stop(timeout=5)
        self.stack.stop()

    def _pin(self, proc: Proc, core: int | None) -> None:
        if core is not None:
            sysstat.pin(pid(proc), {core})

    # ------------------------------------------------------------ endpoints
    @property
    def legacy_node(self) -> tuple[str, Proc]:
        return next(iter(self.stack.legacy.items()))

    @property
    def new_instance(self) -> tuple[str, Proc]:
        return next(iter(self.stack.new.items()))

    def legacy_url(self) -> str:
        return f"http://127.0.0.1:{self.stack.legacy_ports[self.legacy_node[0]]}"

    def new_url(self) -> str:
        return f"http://127.0.0.1:{self.stack.new_ports[self.new_instance[0]]}"

    # ------------------------------------------------------------ session and flags
    def login(self) -> Login:
        return asyncio.run(self._login_notes() if self.app is NOTES else self._login())

    async def _login_notes(self) -> Login:
        """``ann`` logs in through the gateway and fills her session (route at legacy)."""
        from testkit.notes_user import NotesUser

        async with NotesUser(self.stack.url()) as user:
            reply = await user.login("ann")
            if reply.status != 200:
                raise RuntimeError(f"login through the gateway failed: {reply.status} "
                                   f"{reply.body}")
            for key, value in NOTES_STATE["prefs"].items():
                await _ok(user.call("PUT", f"/api/prefs/{key}", {"value": value}))
            for tag in NOTES_STATE["tags"]:
                await _ok(user.call("POST", "/api/tags", {"tag": tag}))
            for page, count in NOTES_STATE["visits"].items():
                for _ in range(count):
                    await _ok(user.call("POST", f"/api/visits/{page}"))
            await _ok(user.call("PUT", "/api/draft", {"text": NOTES_STATE["draft"]}))
            state = await _ok(user.call("GET", "/api/state"))  # now in Redis too
            shown = {k: state.body.get(k) for k in NOTES_STATE}
            if shown != NOTES_STATE:
                raise RuntimeError(f"unexpected state: {state.body}")
            node = next((c.value for c in user.jar if c.key == AFFINITY_COOKIE),
                        self.legacy_node[0])
            sync = next((c.value for c in user.jar if c.key == SYNC_COOKIE), "")
            return Login(user.session_id or "", str(reply.body["id"]), str(reply.body["name"]),
                         node, sync, cookie_name=NOTES.cookie)

    async def _login(self) -> Login:
        async with ShopUser(self.stack.url()) as user:
            reply = await user.login("alice")
            if reply.status != 200:
                raise RuntimeError(f"login through the gateway failed: {reply.status} {reply.body}")
            for product_id, qty in CART_ITEMS.items():
                await user.add(product_id, qty)
            cart = await user.cart()  # the gateway now holds the session in Redis
            if cart.status != 200 or cart_lines(cart) != CART_ITEMS:
                raise RuntimeError(f"unexpected cart: {cart.status} {cart.body}")
            node = next((c.value for c in user.jar if c.key == AFFINITY_COOKIE),
                        self.legacy_node[0])
            sync = next((c.value for c in user.jar if c.key == SYNC_COOKIE), "")
            return Login(user.session_id or "", int(reply.body["user"]["id"]),
                         reply.body["user"]["username"], node, sync)

    def set_stage(self, route: str, stage: str) -> None:
        reply = asyncio.run(Admin(self.stack.admin_url(), self.stack.admin_token)
                            .set_route(route, stage))
        if reply.status != 200:
            raise RuntimeError(f"flipping {route} to {stage}: {reply.status} {reply.body}")

    def identity_token(self, login: Login) -> str:
        """A JWT exactly as the gateway mints it (same code, the stack's key)."""
        cfg = TokensSection(**self.stack.config()["tokens"])
        minter = TokenMinter(cfg, self.stack.keys.private_key)
        return minter.mint(login.sid, Identity(login.sid, str(login.user_id), login.username))

    def identity_headers(self, login: Login) -> dict[str, str]:
        return {"Cookie": login.cookie, IDENTITY_HEADER: self.identity_token(login)}

    # ------------------------------------------------------------ side processes
    @contextlib.contextmanager
    def gateway(self, log_level: str) -> Iterator[tuple[str, str, Proc]]:
        """The stack's gateway for ``info``; a second one on the same stack otherwise."""
        if log_level == self.stack.config()["gateway"]["log_level"]:
            yield self.stack.url(), self.stack.admin_url(), self.stack.gateways[0]
            return
        port, admin_port = free_port(), free_port()
        config = self.stack.config()
        config["gateway"]["log_level"] = log_level
        path = self.stack.dir / f"config-gateway-{log_level}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        argv = [sys.executable, "-m", "strangler", "--config", str(path), "gateway",
                "--port", str(port), "--admin-port", str(admin_port)]
        admin = f"http://127.0.0.1:{admin_port}"
        with self._side(Proc(f"gateway-{log_level}", argv, self.stack.dir / "logs",
                             env=self.stack.env, ready_url=f"{admin}/readyz")) as proc:
            yield f"http://127.0.0.1:{port}", admin, proc

    @contextlib.contextmanager
    def plain_proxy(self, upstream: str, module: str = "bench.plain_proxy"
                    ) -> Iterator[tuple[str, Proc]]:
        """The plain aiohttp proxy, or another with its CLI (``bench.lean_proxy``)."""
        port = free_port()
        argv = [sys.executable, "-m", module, "--upstream", upstream, "--port", str(port)]
        url = f"http://127.0.0.1:{port}"
        name = module.rpartition(".")[2].replace("_", "-")
        with self._side(Proc(name, argv, self.stack.dir / "logs",
                             ready_url=f"{url}/healthz")) as proc:
            yield url, proc

    @contextlib.contextmanager
    def _side(self, proc: Proc) -> Iterator[Proc]:
        self.extra.append(proc)
        try:
            proc.start(timeout=30)
            self._pin(proc, self.cores.proxy)
            yield proc
        finally:
            proc.stop(timeout=5)
            self.extra.remove(proc)


def pid(proc: Proc) -> int:
    if proc.popen is None:
        raise RuntimeError(f"{proc.name} is not running")
    return proc.popen.pid


def route_stage(admin_url: str, route: str) -> str:
    with urllib.request.urlopen(f"{admin_url}/api/routes", timeout=2) as resp:
        routes = json.load(resp)["routes"]
    return str(next(r["stage"] for r in routes if r["name"] == route))


def wait_for_stage(admin_url: str, route: str, stage: str) -> None:
    wait_until(lambda: route_stage(admin_url, route) == stage, timeout=5,
               what=f"{route} at {stage} on {admin_url}")


def served_counts(admin_url: str) -> dict[tuple[str, str, str], float]:
    """(route, backend, status) -> requests served, from the gateway's /metrics."""
    with urllib.request.urlopen(f"{admin_url}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        m = _METRIC.match(line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"]))
            out[(labels["route"], labels["backend"], labels["status"])] = float(m["value"])
    return out


def shadow_counts(admin_url: str) -> dict[str, float]:
    """``route/result`` (``route/noise_result`` for legacy-vs-legacy) -> shadow comparisons
    counted so far, from the gateway's /metrics."""
    with urllib.request.urlopen(f"{admin_url}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _SHADOW_METRIC.match(line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"]))
            prefix = "noise_" if m["kind"] == "noise_comparisons" else ""
            out[f"{labels['route']}/{prefix}{labels['result']}"] = float(m["value"])
    return out


async def _ok(call: Any) -> Any:
    reply = await call
    if reply.status != 200:
        raise RuntimeError(f"setting up the bench user: {reply.status} {reply.body}")
    return reply


def get_bytes(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
