"""One gateway process: its listeners, its start, reload and stop.

The parts behind the listeners are built by ``gateway.runtime.compose.build`` (the
composition root); this module starts them, swaps a rebuilt set in on a reload,
and stops them. The proxy listener is the gateway's own (``gateway.edge.server``:
asyncio protocols and llhttp, the hot path); the admin listener is an ordinary
aiohttp application.
Nothing connects at import time; ``Gateway.start`` does it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import structlog
from aiohttp import web

from flags.pins import Pins
from flags.service import FlagService
from flags.view import FlagView
from gateway.admin.api import AdminState, create_admin_app
from gateway.admin.session import DISCOVERY, Discovery
from gateway.admin.shadow import SHADOWER
from gateway.edge.blocked import exposed
from gateway.edge.http import Incoming, Reply, problem
from gateway.edge.server import Connection, ProxyServer, parse_limits
from gateway.errors import BadRequest, GatewayError, PayloadTooLarge, UriTooLong
from gateway.observe import log
from gateway.observe.metrics import Metrics
from gateway.pipeline.chain import Pipeline
from gateway.routing.breaker import Breaker
from gateway.runtime.compose import Held, Overrides, Parts, build, count_upstream, preflight
from gateway.runtime.reload import Reloader
from gateway.runtime.reload_api import RELOADER
from gateway.runtime.reload_api import add_routes as add_reload_routes
from gateway.session import budget as session_budget
from gateway.session.bridge import SessionBridge
from gateway.session.port import SessionStorePort
from gateway.session.redis_client import RedisClient
from gateway.session.sampler import SamplerLimits
from gateway.session.signing import KeyRing
from gateway.settings import Config, Listen
from gateway.shadow.stage import Shadower
from gateway.upstream.pools import LegacyPool, NewPool

_log = log.get("gateway")
T = TypeVar("T")


class Gateway:
    """One gateway process: both listeners and everything behind them.

    ``load`` re-reads the config (file and command-line overrides) for a reload;
    without it the admin API refuses to reload. ``reuse_port`` and ``worker_admin``
    are for ``--workers``: every worker binds the same ports (SO_REUSEPORT), and
    each may also have an admin port of its own. ``sampling`` bounds the session
    sampler behind ``GET /api/session/schema`` (default: ``SamplerLimits()``);
    ``overrides`` are parts brought by the caller (``gateway.runtime.compose``).

    Constructing one reads the secrets and the signing key (``ConfigError``,
    ``SigningKeyError``); ``start`` builds the rest (``gateway.runtime.compose.build``).
    """

    def __init__(self, cfg: Config, *, load: Callable[[], Config] | None = None,
                 reuse_port: bool = False, worker_admin: Listen | None = None,
                 sampling: SamplerLimits | None = None,
                 overrides: Overrides | None = None) -> None:
        given = overrides or Overrides()
        if sampling is not None:
            given = replace(given, sampling=sampling)
        self._given = preflight(cfg, given)
        self._cfg = cfg
        self.parts: Parts | None = None
        self.admin: AdminState | None = None
        self.proxy: ProxyServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._runners: list[web.BaseRunner] = []
        self._reuse_port = reuse_port
        self._worker_admin = worker_admin
        self.draining = False
        self.in_flight = 0
        self.reloader = Reloader(lambda: self.cfg, load, self.apply) if load else None

    # ------------------------------------------------------------ the parts
    # What tests and the admin read; the pipeline's own parts are in ``self.parts``.
    @property
    def running(self) -> Parts:
        if self.parts is None:
            raise RuntimeError("the gateway has not been started")
        return self.parts

    @property
    def cfg(self) -> Config:
        return self._cfg if self.parts is None else self.parts.cfg

    @property
    def held(self) -> Held:
        return self.running.held

    @property
    def metrics(self) -> Metrics:
        return _given(self._given.metrics)

    @property
    def redis(self) -> RedisClient:
        return self.held.redis

    @property
    def store(self) -> SessionStorePort:
        return self.held.store

    @property
    def legacy(self) -> LegacyPool:
        return self.held.legacy

    @property
    def new(self) -> NewPool:
        return self.held.new

    @property
    def bridge(self) -> SessionBridge:
        return self.held.bridge

    @property
    def pins(self) -> Pins:
        return self.held.pins

    @property
    def service(self) -> FlagService:
        return self.held.service

    @property
    def shadow(self) -> Shadower:
        return self.held.shadow

    @property
    def breakers(self) -> dict[str, Breaker]:
        return self.running.breakers

    @property
    def pipeline(self) -> Pipeline:
        return self.running.pipeline

    # ------------------------------------------------------------ start
    async def start(self) -> None:
        """Connect and listen; on any failure, release what was opened, then re-raise."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        parts = self.parts = build(self._cfg, self._given)
        held = parts.held
        await self._first_health_check(held)
        await held.provider.start()
        held.provider.subscribe(self._flags_changed)
        self._flags_changed(held.provider.view)
        held.store.on_recover.append(self._store_recovered)
        self.admin = AdminState(provider=held.provider, service=held.service,
                                routes=parts.router.routes, breakers=parts.breakers,
                                store=held.store, legacy=held.legacy, new=held.new,
                                metrics=held.metrics, tokens=held.secrets.admin_tokens)
        self.admin.hosts = parts.admin_hosts
        self.admin.explainer = parts.explainer
        self.admin.jwks = held.keys.jwks
        self._tasks.append(asyncio.create_task(self._watch_keys(held.keys)))
        self._tasks.append(asyncio.create_task(held.store.watch()))
        interval = parts.cfg.health.interval_ms / 1000
        for pool in (held.legacy, held.new):
            self._tasks.append(asyncio.create_task(pool.run_checks(interval)))
        await self._listen(parts)

    async def _watch_keys(self, keys: KeyRing) -> None:
        """Key rotation without a restart (``gateway.session.signing``)."""
        while True:
            await asyncio.sleep(keys.check_s)
            try:
                keys.tick()
            except Exception as exc:
                _log.error("signing_key_check_failed", reason=repr(exc))

    async def _first_health_check(self, held: Held) -> None:
        await asyncio.gather(held.legacy.check_all(), held.new.check_all())
        with contextlib.suppress(Exception):
            await held.redis.ping()
        for pool in (held.legacy, held.new):
            for m in pool.members.values():
                count_upstream(held.metrics, pool.kind, m)

    # ------------------------------------------------------------ reload
    def apply(self, cfg: Config) -> None:
        """Swap in a reloaded config (checked by ``gateway.runtime.reload``) between two requests.

        ``build`` makes the new parts first, then they are swapped in with no ``await``
        in between, so no request sees half of it; requests in flight finish on the
        objects they hold.
        """
        self._swap(build(cfg, self._given, running=self.running))

    def _swap(self, parts: Parts) -> None:
        held, cfg = parts.held, parts.cfg
        interval = cfg.health.interval_ms / 1000
        added = [(held.legacy, held.legacy.configure(list(parts.legacy_members),
                                                     cfg.health.path, None, interval)),
                 (held.new, held.new.configure(list(parts.new_members), cfg.health.path,
                                               cfg.new.ejection, interval))]
        held.shadow.configure(cfg.routes)
        self.parts = parts
        if self.admin is not None:
            self.admin.routes, self.admin.breakers = parts.router.routes, parts.breakers
            self.admin.explainer = parts.explainer
            self.admin.hosts = parts.admin_hosts
        if self.proxy is not None:
            self.proxy.limits = parts.conn_limits
            self.proxy.parse = parse_limits(cfg.gateway.limits)
        _warn_edge(cfg)
        for pool, members in added:  # a new member gets traffic once a check sees it up
            self._tasks.extend(asyncio.create_task(pool.check(m)) for m in members)
        if gc.get_freeze_count():  # the process froze its start-up heap (runtime.process)
            asyncio.get_running_loop().call_later(_REFREEZE_S, _refreeze)

    # ------------------------------------------------------------ listeners
    async def _listen(self, parts: Parts) -> None:
        g, held = parts.cfg.gateway, parts.held
        assert self.admin is not None
        proxy = self.proxy = ProxyServer(self._handle, parts.conn_limits,
                                         parse_limits(g.limits), held.metrics)
        # SO_REUSEPORT only where workers share a port: a second, stray gateway on a
        # port must fail to bind, not silently take half the traffic.
        await proxy.listen(g.listen.host, g.listen.port, reuse_port=self._reuse_port)
        admin_app = create_admin_app(self.admin)
        admin_app[SHADOWER] = held.shadow
        admin_app[DISCOVERY] = Discovery(held.sampler, held.bridge.profile)
        if self.reloader is not None:
            admin_app[RELOADER] = self.reloader
        add_reload_routes(admin_app)
        admin = web.AppRunner(admin_app, handle_signals=False, access_log=None,
                              shutdown_timeout=5.0)
        await admin.setup()
        self._runners.append(admin)
        admin_sites = [g.admin_listen, *([self._worker_admin] if self._worker_admin else [])]
        for i, listen in enumerate(admin_sites):
            site = web.TCPSite(admin, listen.host, listen.port, reuse_address=True,
                               reuse_port=self._reuse_port and i == 0, backlog=1024)
            await site.start()
        _log.info("gateway_started", listen=f"{g.listen.host}:{g.listen.port}",
                  admin=f"{g.admin_listen.host}:{g.admin_listen.port}",
                  worker_admin=self._worker_admin and
                  f"{self._worker_admin.host}:{self._worker_admin.port}",
                  reuse_port=self._reuse_port, flag_version=held.provider.view.state.version)
        _warn_edge(parts.cfg)

    async def _handle(self, request: Incoming, rid: str, conn: Connection) -> Reply:
        """The pipeline's answer, or the problem+json of its refusal; one log line."""
        structlog.contextvars.bind_contextvars(request_id=rid)
        self.in_flight += 1
        try:
            reply = await self.running.pipeline.handle(request, rid)
            if self.draining:
                reply.close = True  # keep-alive clients reconnect elsewhere
            return reply
        except GatewayError as exc:
            if conn.closed_reason is None:  # else its connection_closed line is this one's
                level = _log.warning if exc.status >= 500 else _log.info
                level("request_refused", status=exc.status, code=exc.code, detail=exc.detail)
            reply = problem(exc, rid)
            if isinstance(exc, BadRequest | PayloadTooLarge | UriTooLong):
                # The framing of this connection cannot be trusted any more (a
                # smuggling probe, an unread oversize body): never reuse it.
                reply.close = True
            return reply
        except asyncio.CancelledError:
            if conn.closed_reason is None:  # else its connection_closed line is this one's
                _log.info("client_gone")
            raise
        except Exception:
            _log.exception("unhandled_error")
            return problem(GatewayError("internal error"), rid)
        finally:
            self.in_flight -= 1

    # ------------------------------------------------------------ callbacks
    def _flags_changed(self, view: FlagView) -> None:
        parts = self.running
        parts.decider.update(view)
        parts.held.pin_book.reset()
        metrics = parts.held.metrics
        metrics.flag_version.set(view.state.version)
        metrics.kill_switch.set(1 if view.kill_switch else 0)
        for name, flag in view.state.routes.items():
            metrics.route_percent.labels(name).set(0 if view.kill_switch else flag.percent)

    def _store_recovered(self) -> None:
        self._tasks.append(session_budget.spawn(self.running.held.bridge.resync_all()))

    # ------------------------------------------------------------ shutdown
    async def stop(self, drain_s: float = 0.0) -> None:
        """Readiness false, wait ``drain_s``, stop accepting, let in-flight requests finish
        (up to ``gateway.shutdown.timeout_s``), close everything (also half-started)."""
        if self.admin is not None and self._runners:
            self.admin.shutting_down = self.draining = True
            _log.info("shutdown_started", drain_s=drain_s, in_flight=self.in_flight,
                      timeout_s=self.cfg.gateway.shutdown.timeout_s)
            if drain_s:
                await asyncio.sleep(drain_s)  # let load balancers see readyz go false
            _log.info("listeners_closing", in_flight=self.in_flight)
        started = time.monotonic()
        if self.proxy is not None:  # the proxy first: the admin answers readyz meanwhile
            cut = await self.proxy.shutdown(self.cfg.gateway.shutdown.timeout_s)
            level = _log.warning if cut else _log.info
            level("requests_drained", cut=cut, waited_s=round(time.monotonic() - started, 3))
            self.proxy = None
        for runner in self._runners:
            await _bounded("admin_listener", runner.cleanup())
        self._runners.clear()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=_STOP_PART_S)
            if pending:
                _log.error("stop_timed_out", part="background_tasks",
                           tasks=sorted(t.get_coro().__qualname__ for t in pending))  # type: ignore[union-attr]
        if self.parts is not None:
            await _close(self.parts.held)
        _log.info("gateway_stopped")


_REFREEZE_S = 30.0
"""After a reload, once requests on the old parts are long done."""


def _refreeze() -> None:
    """The parts a reload replaced were frozen with the rest at start: thaw, collect what
    is garbage now (their cycles), freeze again. Without it every reload would leave
    the old parts behind for good."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _given(part: T | None) -> T:
    assert part is not None, "filled in by compose.preflight"
    return part


async def _close(held: Held) -> None:
    """Stop what the first build made; what the caller brought (``Overrides``) is theirs.
    Each part gets ``_STOP_PART_S``: a stop never hangs, and one that would is named."""
    await _bounded("shadow", held.shadow.stop())
    await _bounded("flag_provider", held.provider.stop())
    if "store" in held.owned:
        await _bounded("session_store", held.store.stop())
    await _bounded("pins", held.pin_book.stop())
    await _bounded("backend_pools", held.clients.close())
    await _bounded("ledger", held.ledger.close())
    if "redis" in held.owned:
        await _bounded("redis", held.redis.aclose())


_STOP_PART_S = 10.0


async def _bounded(part: str, stopping: Coroutine[Any, Any, object]) -> None:
    try:
        await asyncio.wait_for(stopping, _STOP_PART_S)
    except TimeoutError:
        _log.error("stop_timed_out", part=part, limit_s=_STOP_PART_S)



def _warn_edge(cfg: Config) -> None:
    """What the config leaves open at the front door, said once per start or reload."""
    if not cfg.gateway.public_hosts:
        _log.warning("public_hosts_unset", detail="any valid Host is served and passed on as "
                     "X-Forwarded-Host; list your names in gateway.public_hosts")
    open_paths = exposed(cfg)
    if open_paths:
        _log.warning("internal_paths_not_blocked", paths=open_paths,
                     detail="gateway.blocked_paths does not cover them: clients can reach them")

