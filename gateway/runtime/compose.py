"""The composition root: ``build(cfg, overrides)`` is the one place the gateway's parts
are made and connected.

    preflight   secrets, the signing key ring, the metrics registry: what must be
                checked before anything opens (``strangler gateway --workers``
                checks it before forking)
    build       everything behind the listeners, from a validated config; nothing
                connects yet (``Gateway.start`` starts the parts that run)
    rebuild     ``build(cfg, overrides, running=parts)`` on a reload: the parts
                that live as long as the process (Redis, the backend connection
                pools, the bridge, the flag provider, the ledger, the metrics,
                the key ring) are the running ones; the parts a config change
                reaches (router, decider, breakers, pipeline, explainer, host
                lists, member lists, connection limits) are made anew; an
                unchanged route keeps its breaker and retry budget

``Gateway`` (``gateway.runtime.app``) calls it at start and on a reload (build, then swap);
tests and tools call it too, with ``Overrides`` for the parts they bring themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from adapters.profile import build as build_profile
from flags.ledger import Ledger
from flags.pins import Pins
from flags.provider import Provider
from flags.service import FlagService
from gateway.edge.blocked import Blocklist, patterns
from gateway.edge.hosts import AdminHosts
from gateway.edge.server import ConnectionLimits, connection_limits
from gateway.observe.metrics import Metrics
from gateway.pipeline.chain import Pipeline
from gateway.routing.breaker import Breaker, State
from gateway.routing.budget import RetryBudget
from gateway.routing.decide import Decider
from gateway.routing.explain import Explainer
from gateway.routing.pinning import PinBook
from gateway.routing.routes import Router
from gateway.runtime.startup import Secrets, make_provider, read_secrets
from gateway.session.bridge import SessionBridge
from gateway.session.hook import LegacyHook
from gateway.session.port import SessionStorePort
from gateway.session.redis_client import RedisClient, make_redis
from gateway.session.sampler import SamplerLimits, SessionSampler
from gateway.session.signing import KeyRing
from gateway.session.store import SessionStore
from gateway.session.tokens import TokenMinter
from gateway.settings import Config, ConfigError
from gateway.shadow.stage import Shadower
from gateway.upstream.client import ClientLimits, Clients, HttpUpstream
from gateway.upstream.forward import Upstream
from gateway.upstream.pools import LegacyPool, Member, NewPool


@dataclass(frozen=True)
class Overrides:
    """Parts made elsewhere, used instead of building them.

    A test brings its own Redis client (the caller then closes it, ``Held.owned``
    says so), its own backends (``upstreams``: an in-memory one for each node and
    instance, ``testkit.fakes``) or its own session store (``store``: an in-memory
    one, ``testkit.fakes``); ``Gateway`` passes what ``preflight`` read
    before start, so the key file is read once.
    """

    secrets: Secrets | None = None
    keys: KeyRing | None = None
    metrics: Metrics | None = None
    redis: RedisClient | None = None
    upstreams: UpstreamFactory | None = None
    """Makes the ``Upstream`` for a node or instance (id, URL, limits); default: the
    network client (``gateway.upstream.client``)."""
    provider: Provider | None = None
    store: SessionStorePort | None = None
    """The session records; default: Redis (``gateway.session.store``). The Redis
    client is made all the same: the flag provider and the pins use it."""
    sampling: SamplerLimits | None = None
    """Bounds of the session sampler behind ``GET /api/session/schema``."""


@dataclass(frozen=True)
class Held:
    """What a gateway process holds from start to exit: made by its first build, handed
    on to every rebuild, stopped by ``Gateway.stop``."""

    secrets: Secrets
    keys: KeyRing
    metrics: Metrics
    clients: Clients
    """The backend connection pools (closed at stop; unused when ``upstreams`` is given)."""
    upstreams: UpstreamFactory
    redis: RedisClient
    store: SessionStorePort
    provider: Provider
    legacy: LegacyPool
    new: NewPool
    sampler: SessionSampler
    bridge: SessionBridge
    pins: Pins
    pin_book: PinBook
    ledger: Ledger
    service: FlagService
    shadow: Shadower
    owned: frozenset[str]
    """Whether the build opened ``redis`` and made ``store`` (else their owner closes
    them)."""


@dataclass(frozen=True)
class Parts:
    """The gateway's object graph. Frozen: a reload builds a new one and swaps it whole."""

    cfg: Config
    held: Held
    # -- made anew from the config on every build
    router: Router
    decider: Decider
    breakers: dict[str, Breaker]
    budgets: dict[str, RetryBudget]
    pipeline: Pipeline
    explainer: Explainer
    admin_hosts: AdminHosts
    conn_limits: ConnectionLimits
    legacy_members: tuple[Upstream, ...]
    """The pools' members for this config (a reload hands them to ``Pool.configure``)."""
    new_members: tuple[Upstream, ...]


def preflight(cfg: Config, overrides: Overrides | None = None) -> Overrides:
    """``overrides`` with what must hold before anything opens filled in: the secrets
    (``ConfigError``), the signing key ring (``SigningKeyError``) and the registry."""
    given = overrides or Overrides()
    if not cfg.redis.configured:
        raise ConfigError("redis: the gateway needs redis.url, redis.sentinel or "
                          "redis.cluster (the demo provides a url)")
    t = cfg.tokens
    return dataclasses.replace(
        given, secrets=given.secrets or read_secrets(cfg),
        keys=given.keys or KeyRing(t.private_key_file, ttl_s=t.ttl_s,
                                   publish_ahead_s=t.publish_ahead_s, check_s=t.key_check_s),
        metrics=given.metrics or Metrics())


def build(cfg: Config, overrides: Overrides | None = None, *,
          running: Parts | None = None) -> Parts:
    """The gateway's parts for ``cfg``; with ``running``, the rebuild for a reload.

    Synchronous and connection-free: a reload builds between two requests (nothing
    it makes is seen until the caller swaps it in), and a start connects afterwards.
    """
    router = Router(cfg.routes, Blocklist(patterns(cfg)))
    limits = client_limits(cfg)
    if running is None:
        held, (legacy_members, new_members) = _hold(cfg, preflight(cfg, overrides), limits)
    else:
        held = running.held
        legacy_members, new_members = _members(cfg, held.upstreams, limits)
    breakers, budgets = _route_guards(router, held.metrics, running)
    decider = Decider(router.routes, held.provider.view, held.metrics.flag_evaluated)
    return Parts(
        cfg=cfg, held=held, router=router, decider=decider, breakers=breakers, budgets=budgets,
        pipeline=Pipeline(cfg.gateway, router, decider, held.bridge, held.legacy, held.new,
                          breakers, budgets, held.shadow, held.metrics, held.pin_book),
        explainer=Explainer(router, decider, breakers, held.store, held.new, held.pin_book,
                            held.ledger, cfg.gateway.limits.max_url_bytes),
        admin_hosts=AdminHosts(cfg.gateway.admin_hosts, cfg.gateway.admin_listen.host),
        conn_limits=connection_limits(cfg.gateway.limits),
        legacy_members=legacy_members, new_members=new_members)


_Members = tuple[tuple[Upstream, ...], tuple[Upstream, ...]]
UpstreamFactory = Callable[[str, str, ClientLimits], Upstream]


def _hold(cfg: Config, given: Overrides, limits: ClientLimits) -> tuple[Held, _Members]:
    assert given.secrets is not None and given.keys is not None and given.metrics is not None
    secrets, keys, metrics = given.secrets, given.keys, given.metrics
    profile = build_profile(cfg.session)
    redis = given.redis if given.redis is not None else make_redis(cfg.redis)
    budget_ms = cfg.gateway.session_sync.budget_ms
    store = given.store if given.store is not None else SessionStore(
        redis, cfg.redis.key_prefix, cfg.redis.session_ttl_s, handle_key=secrets.session_key,
        max_in_flight=max(cfg.redis.max_connections - 16, 4),
        pool_wait_s=cfg.redis.timeout_ms / 1000, lease_ms=budget_ms + 1000,
        probe_timeout_s=cfg.redis.timeout_ms / 1000, on_error=metrics.redis_errors.inc)
    store.lock_events = metrics.lock
    metrics.redis_up.set_function(lambda: 1.0 if store.up else 0.0)
    provider = given.provider if given.provider is not None else make_provider(cfg, redis)
    clients = Clients()  # opens nothing until a request needs a connection
    upstreams = given.upstreams or _network(clients)
    members = _members(cfg, upstreams, limits)
    legacy = LegacyPool("legacy", list(members[0]), cfg.health.path)
    new = NewPool("new", list(members[1]), cfg.health.path, cfg.new.ejection)
    for pool in (legacy, new):
        pool.on_change(_upstream_listener(metrics, pool.kind))
    sampler = SessionSampler(given.sampling)
    hook = LegacyHook(secrets.internal_token, profile, sampler.offer)
    bridge = SessionBridge(store, legacy, hook, TokenMinter(cfg.tokens, keys), metrics, profile,
                           budget_s=budget_ms / 1000,
                           redis_budget_s=cfg.gateway.session_sync.redis_budget_ms / 1000)
    pins = Pins(redis, cfg.redis.key_prefix)
    ledger = Ledger(cfg.database.ledger_url or cfg.database.url)
    owned = frozenset({"redis"} if given.redis is None else ()) | frozenset(
        {"store"} if given.store is None else ())
    held = Held(secrets=secrets, keys=keys, metrics=metrics, clients=clients,
                upstreams=upstreams, redis=redis,
                store=store, provider=provider, legacy=legacy, new=new, sampler=sampler,
                bridge=bridge, pins=pins, pin_book=PinBook(pins, store.handle), ledger=ledger,
                service=FlagService(provider, ledger, pins),
                shadow=Shadower(new, bridge, metrics, cfg.gateway.shadow_concurrency,
                                cfg.routes),
                owned=owned)
    return held, members


def client_limits(cfg: Config) -> ClientLimits:
    t = cfg.gateway.timeouts
    return ClientLimits(connect_s=t.connect_ms / 1000, read_s=t.request_ms / 1000)


def _network(clients: Clients) -> UpstreamFactory:
    return lambda upstream_id, url, limits: HttpUpstream(upstream_id, url, clients, limits)


def _members(cfg: Config, make: UpstreamFactory, limits: ClientLimits) -> _Members:
    return (tuple(make(n.id, n.url, limits) for n in cfg.legacy.nodes),
            tuple(make(n.id, n.url, limits) for n in cfg.new.instances))


def _route_guards(router: Router, metrics: Metrics, running: Parts | None
                  ) -> tuple[dict[str, Breaker], dict[str, RetryBudget]]:
    """A breaker and a retry budget per route; on a reload, a route whose settings
    did not change keeps its running ones (an open breaker stays open)."""
    breakers, budgets = {}, {}
    on_change = _breaker_listener(metrics)
    for name, r in router.routes.items():
        was = running.router.routes.get(name) if running is not None else None
        b, rb = r.breaker, r.retry_budget
        if running is not None and was is not None and was.breaker == b:
            breakers[name] = running.breakers[name]
        else:
            breakers[name] = Breaker(name, b.failures, b.cooldown_ms / 1000, on_change)
        if running is not None and was is not None and was.retry_budget == rb:
            budgets[name] = running.budgets[name]
        else:
            budgets[name] = RetryBudget(rb.ratio, rb.min_retries, rb.window_s)
    return breakers, budgets


def _breaker_listener(metrics: Metrics) -> Callable[[str, State], None]:
    def changed(route: str, state: State) -> None:
        metrics.breaker_state.labels(route).set(int(state))
        metrics.breaker_transitions.labels(route, state.name.lower()).inc()
    return changed


def _upstream_listener(metrics: Metrics, pool: str) -> Callable[[Member], None]:
    return lambda member: count_upstream(metrics, pool, member)


def count_upstream(metrics: Metrics, pool: str, member: Member) -> None:
    metrics.upstream_healthy.labels(pool, member.id).set(1 if member.healthy else 0)
