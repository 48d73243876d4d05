"""Wiring: the one place that builds the gateway's parts and connects them.

The proxy listener is aiohttp's low-level ``web.Server`` -- the pipeline does
its own routing, so the application router and middleware chain would be
pure per-request overhead. The admin listener is an ordinary application.
Nothing connects at import time; ``Gateway.start`` does it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import cast

import structlog
from aiohttp import web

from adapters.profile import build as build_profile
from flags.ledger import Ledger
from flags.pins import Pins
from flags.service import FlagService
from flags.view import FlagView
from gateway import log
from gateway.admin import AdminState, create_admin_app
from gateway.admin_reload import RELOADER
from gateway.admin_reload import add_routes as add_reload_routes
from gateway.admin_session import DISCOVERY, Discovery
from gateway.admin_shadow import SHADOWER
from gateway.blocked import Blocklist, exposed, patterns
from gateway.breaker import Breaker, State
from gateway.budget import RetryBudget
from gateway.decide import Decider
from gateway.errors import BadRequest, GatewayError, PayloadTooLarge, UriTooLong
from gateway.explain import Explainer
from gateway.forward import ClientLimits, HttpUpstream, new_client_session
from gateway.headers import request_id
from gateway.hosts import AdminHosts
from gateway.legacy_hook import LegacyHook
from gateway.listener import Connection, ProxyServer, connection_limits
from gateway.metrics import Metrics
from gateway.pinning import PinBook
from gateway.pipeline import Pipeline, problem
from gateway.redis_client import make_redis
from gateway.reload import Reloader
from gateway.routes import Router
from gateway.session_bridge import SessionBridge
from gateway.session_sampler import SamplerLimits, SessionSampler
from gateway.session_store import SessionStore
from gateway.settings import Config, ConfigError, Listen
from gateway.shadow import Shadower
from gateway.signing import KeyRing
from gateway.startup import make_provider, read_secrets
from gateway.tokens import TokenMinter
from gateway.upstreams import LegacyPool, Member, NewPool

_log = log.get("gateway")


class Gateway:
    """One gateway process: both listeners and everything behind them.

    ``load`` re-reads the config (file and command-line overrides) for a reload;
    without it the admin API refuses to reload. ``reuse_port`` and ``worker_admin``
    are for ``--workers``: every worker binds the same ports (SO_REUSEPORT), and
    each may also have an admin port of its own. ``sampling`` bounds the session
    sampler behind ``GET /api/session/schema`` (default: ``SamplerLimits()``).
    """

    def __init__(self, cfg: Config, *, load: Callable[[], Config] | None = None,
                 reuse_port: bool = False, worker_admin: Listen | None = None,
                 sampling: SamplerLimits | None = None) -> None:
        if not cfg.redis.configured:
            raise ConfigError("redis: the gateway needs redis.url, redis.sentinel or "
                              "redis.cluster (the demo provides a url)")
        self.cfg = cfg
        self.secrets = read_secrets(cfg)
        t = cfg.tokens
        self.keys = KeyRing(t.private_key_file, ttl_s=t.ttl_s, publish_ahead_s=t.publish_ahead_s,
                            check_s=t.key_check_s)
        self.metrics = Metrics()
        self._tasks: list[asyncio.Task[None]] = []
        self._runners: list[web.BaseRunner] = []
        self._reuse_port = reuse_port
        self._worker_admin = worker_admin
        self._sampling = sampling
        self.draining = False
        self.in_flight = 0
        self.reloader = Reloader(lambda: self.cfg, load, self.apply) if load else None

    async def start(self) -> None:
        """Connect and listen; on any failure, release what was opened, then re-raise."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        cfg = self.cfg
        self.http = new_client_session(_limits(cfg))
        legacy, new = self._upstreams(cfg)
        self.legacy = LegacyPool("legacy", legacy, cfg.health.path)
        self.new = NewPool("new", new, cfg.health.path, cfg.new.ejection)
        self.redis = make_redis(cfg.redis)
        budget_ms = cfg.gateway.session_sync.budget_ms
        self.store = SessionStore(self.redis, cfg.redis.key_prefix, cfg.redis.session_ttl_s,
                                  handle_key=self.secrets.session_key,
                                  max_in_flight=max(cfg.redis.max_connections - 16, 4),
                                  pool_wait_s=cfg.redis.timeout_ms / 1000,
                                  lease_ms=budget_ms + 1000,
                                  probe_timeout_s=cfg.redis.timeout_ms / 1000,
                                  on_error=self.metrics.redis_errors.inc)
        self.store.lock_events = self.metrics.lock
        self.metrics.redis_up.set_function(lambda: 1.0 if self.store.up else 0.0)
        self.provider = make_provider(cfg, self.redis)
        router = _router(cfg)
        self.breakers, self.budgets = self._route_guards(router)
        profile = build_profile(cfg.session)
        self.sampler = SessionSampler(self._sampling)
        hook = LegacyHook(self.secrets.internal_token, profile, self.sampler.offer)
        minter = TokenMinter(cfg.tokens, self.keys)
        self.bridge = SessionBridge(self.store, self.legacy, hook, minter, self.metrics, profile,
                                    budget_s=budget_ms / 1000,
                                    redis_budget_s=cfg.gateway.session_sync.redis_budget_ms / 1000)
        await self._first_health_check()
        await self.provider.start()
        self.decider = Decider(router.routes, self.provider.view, self.metrics.flag_evaluated)
        self.pins = pins = Pins(self.redis, cfg.redis.key_prefix)
        self.pin_book = PinBook(pins, self.store.handle)
        self.ledger = Ledger(cfg.database.ledger_url or cfg.database.url)
        self.service = FlagService(self.provider, self.ledger, pins)
        self.provider.subscribe(self._flags_changed)
        self._flags_changed(self.provider.view)
        self.shadow = Shadower(self.new, self.bridge, self.metrics, cfg.gateway.shadow_concurrency,
                               cfg.routes)
        self.pipeline = Pipeline(cfg.gateway, router, self.decider, self.bridge, self.legacy,
                                 self.new, self.breakers, self.budgets, self.shadow,
                                 self.metrics, self.pin_book)
        self.store.on_recover.append(self._store_recovered)
        self.admin = AdminState(provider=self.provider, service=self.service,
                                routes=router.routes, breakers=self.breakers, store=self.store,
                                legacy=self.legacy, new=self.new, metrics=self.metrics,
                                tokens=self.secrets.admin_tokens)
        self.admin.hosts = _admin_hosts(cfg)
        self.admin.explainer = Explainer(router, self.decider, self.breakers, self.store,
                                         self.new, self.pin_book, self.ledger,
                                         cfg.gateway.limits.max_url_bytes)
        interval = cfg.health.interval_ms / 1000
        self.admin.jwks = self.keys.jwks
        self._tasks.append(asyncio.create_task(self._watch_keys()))
        self._tasks.append(asyncio.create_task(self.store.watch()))
        for pool in (self.legacy, self.new):
            pool.on_change(self._upstream_listener(pool.kind))
            self._tasks.append(asyncio.create_task(pool.run_checks(interval)))
        await self._listen()

    async def _watch_keys(self) -> None:
        """Key rotation without a restart (``gateway.signing``)."""
        while True:
            await asyncio.sleep(self.keys.check_s)
            try:
                self.keys.tick()
            except Exception as exc:
                _log.error("signing_key_check_failed", reason=repr(exc))

    def _upstreams(self, cfg: Config) -> tuple[list[HttpUpstream], list[HttpUpstream]]:
        limits = _limits(cfg)
        return ([HttpUpstream(n.id, n.url, self.http, limits) for n in cfg.legacy.nodes],
                [HttpUpstream(n.id, n.url, self.http, limits) for n in cfg.new.instances])

    def _route_guards(self, router: Router, running: Router | None = None
                      ) -> tuple[dict[str, Breaker], dict[str, RetryBudget]]:
        """A breaker and a retry budget per route; on a reload, a route whose settings
        did not change keeps its running ones (an open breaker stays open)."""
        breakers, budgets = {}, {}
        for name, r in router.routes.items():
            was = running.routes.get(name) if running is not None else None
            b, rb = r.breaker, r.retry_budget
            if was is not None and was.breaker == b:
                breakers[name] = self.breakers[name]
            else:
                breakers[name] = Breaker(name, b.failures, b.cooldown_ms / 1000,
                                         self._breaker_changed)
            if was is not None and was.retry_budget == rb:
                budgets[name] = self.budgets[name]
            else:
                budgets[name] = RetryBudget(rb.ratio, rb.min_retries, rb.window_s)
        return breakers, budgets

    def apply(self, cfg: Config) -> None:
        """Swap in a reloaded config (checked by ``gateway.reload``) between two requests.

        Everything is built first, then assigned with no ``await`` in between, so no
        request sees half of it; requests in flight finish on the objects they hold.
        """
        router = _router(cfg)
        admin_hosts = _admin_hosts(cfg)
        breakers, budgets = self._route_guards(router, self.pipeline.router)
        decider = Decider(router.routes, self.provider.view, self.metrics.flag_evaluated)
        pipeline = Pipeline(cfg.gateway, router, decider, self.bridge, self.legacy, self.new,
                            breakers, budgets, self.shadow, self.metrics, self.pin_book)
        explainer = Explainer(router, decider, breakers, self.store, self.new,
                              self.pin_book, self.ledger, cfg.gateway.limits.max_url_bytes)
        legacy, new = self._upstreams(cfg)
        limits = connection_limits(cfg.gateway.limits)
        # -- no await from here: the swap
        interval = cfg.health.interval_ms / 1000
        added = [(self.legacy, self.legacy.configure(legacy, cfg.health.path, None, interval)),
                 (self.new, self.new.configure(new, cfg.health.path, cfg.new.ejection, interval))]
        self.shadow.configure(cfg.routes)
        self.breakers, self.budgets, self.decider = breakers, budgets, decider
        self.pipeline = pipeline
        self.admin.routes, self.admin.breakers = router.routes, breakers
        self.admin.explainer = explainer
        if hasattr(self, "proxy"):
            self.proxy.limits = limits
        self.admin.hosts = admin_hosts
        self.cfg = cfg
        _warn_edge(cfg)
        for pool, members in added:  # a new member gets traffic once a check sees it up
            self._tasks.extend(asyncio.create_task(pool.check(m)) for m in members)

    async def _first_health_check(self) -> None:
        await asyncio.gather(self.legacy.check_all(), self.new.check_all())
        with contextlib.suppress(Exception):
            await self.redis.ping()
        for pool in (self.legacy, self.new):
            for m in pool.members.values():
                self._upstream_changed(pool.kind, m)

    async def _listen(self) -> None:
        g = self.cfg.gateway
        server = self.proxy = ProxyServer(
            self._handle, connection_limits(g.limits), self.metrics, handler_cancellation=True,
            max_line_size=g.limits.max_url_bytes + 64, max_field_size=g.limits.max_header_bytes,
            max_headers=g.limits.max_headers, auto_decompress=False, access_log=None)
        proxy = web.ServerRunner(server, handle_signals=False,
                                 shutdown_timeout=g.shutdown.timeout_s)
        admin_app = create_admin_app(self.admin)
        admin_app[SHADOWER] = self.shadow
        admin_app[DISCOVERY] = Discovery(self.sampler, self.bridge.profile)
        if self.reloader is not None:
            admin_app[RELOADER] = self.reloader
        add_reload_routes(admin_app)
        admin = web.AppRunner(admin_app, handle_signals=False, access_log=None,
                              shutdown_timeout=5.0)
        admin_sites = [g.admin_listen, *([self._worker_admin] if self._worker_admin else [])]
        for runner, listens in ((proxy, [g.listen]), (admin, admin_sites)):
            await runner.setup()
            self._runners.append(runner)
            for i, listen in enumerate(listens):
                # SO_REUSEPORT only where workers share a port: a second, stray gateway
                # on a port must fail to bind, not silently take half the traffic.
                site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True,
                                   reuse_port=self._reuse_port and i == 0, backlog=1024)
                await site.start()
        _log.info("gateway_started", listen=f"{g.listen.host}:{g.listen.port}",
                  admin=f"{g.admin_listen.host}:{g.admin_listen.port}",
                  worker_admin=self._worker_admin and
                  f"{self._worker_admin.host}:{self._worker_admin.port}",
                  reuse_port=self._reuse_port, flag_version=self.provider.view.state.version)
        _warn_edge(self.cfg)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        rid = request_id(request.headers.get("X-Request-Id"))
        structlog.contextvars.bind_contextvars(request_id=rid)
        conn = cast(Connection, request.protocol)
        conn.rid = rid  # for the log line if the connection is closed under this request
        self.in_flight += 1
        try:
            response = await self.pipeline.handle(request, rid)  # type: ignore[arg-type]
            if self.draining:
                response.force_close()  # keep-alive clients reconnect elsewhere
            return response
        except GatewayError as exc:
            level = _log.warning if exc.status >= 500 else _log.info
            level("request_refused", status=exc.status, code=exc.code, detail=exc.detail)
            response = problem(exc, rid)
            if isinstance(exc, BadRequest | PayloadTooLarge | UriTooLong):
                # The framing of this connection cannot be trusted any more (a
                # smuggling probe, an unread oversize body): never reuse it.
                response.force_close()
            return response
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
        self.decider.update(view)
        if hasattr(self, "pin_book"):
            self.pin_book.reset()
        self.metrics.flag_version.set(view.state.version)
        self.metrics.kill_switch.set(1 if view.kill_switch else 0)
        for name, flag in view.state.routes.items():
            self.metrics.route_percent.labels(name).set(0 if view.kill_switch else flag.percent)

    def _breaker_changed(self, route: str, state: State) -> None:
        self.metrics.breaker_state.labels(route).set(int(state))
        self.metrics.breaker_transitions.labels(route, state.name.lower()).inc()

    def _upstream_listener(self, pool: str) -> Callable[[Member], None]:
        return lambda member: self._upstream_changed(pool, member)

    def _upstream_changed(self, pool: str, member: Member) -> None:
        self.metrics.upstream_healthy.labels(pool, member.id).set(1 if member.healthy else 0)

    def _store_recovered(self) -> None:
        self._tasks.append(asyncio.create_task(self.bridge.resync_all()))

    # ------------------------------------------------------------ shutdown
    async def stop(self, drain_s: float = 0.0) -> None:
        """Readiness false, wait ``drain_s``, stop accepting, let in-flight requests finish
        (up to ``gateway.shutdown.timeout_s``), close everything (also half-started)."""
        if hasattr(self, "admin") and self._runners:
            self.admin.shutting_down = self.draining = True
            _log.info("shutdown_started", drain_s=drain_s, in_flight=self.in_flight,
                      timeout_s=self.cfg.gateway.shutdown.timeout_s)
            if drain_s:
                await asyncio.sleep(drain_s)  # let load balancers see readyz go false
            _log.info("listeners_closing", in_flight=self.in_flight)
        started = time.monotonic()
        for runner in self._runners:  # the proxy first: the admin answers readyz meanwhile
            await runner.cleanup()
        if self._runners:
            level = _log.warning if self.in_flight else _log.info
            level("requests_drained", cut=self.in_flight,
                  waited_s=round(time.monotonic() - started, 3))
        self._runners.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for part in ("shadow", "provider", "store", "pin_book"):
            if hasattr(self, part):
                await getattr(self, part).stop()
        if hasattr(self, "http"):
            await self.http.close()
        if hasattr(self, "ledger"):
            await self.ledger.close()
        if hasattr(self, "redis"):
            await self.redis.aclose()
        _log.info("gateway_stopped")



def _router(cfg: Config) -> Router:
    return Router(cfg.routes, Blocklist(patterns(cfg)))


def _admin_hosts(cfg: Config) -> AdminHosts:
    return AdminHosts(cfg.gateway.admin_hosts, cfg.gateway.admin_listen.host)


def _warn_edge(cfg: Config) -> None:
    """What the config leaves open at the front door, said once per start or reload."""
    if not cfg.gateway.public_hosts:
        _log.warning("public_hosts_unset", detail="any valid Host is served and passed on as "
                     "X-Forwarded-Host; list your names in gateway.public_hosts")
    open_paths = exposed(cfg)
    if open_paths:
        _log.warning("internal_paths_not_blocked", paths=open_paths,
                     detail="gateway.blocked_paths does not cover them: clients can reach them")


def _limits(cfg: Config) -> ClientLimits:
    t = cfg.gateway.timeouts
    return ClientLimits(connect_s=t.connect_ms / 1000, read_s=t.request_ms / 1000)
