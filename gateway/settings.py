"""config.yaml, parsed once into frozen, typed objects.

Unknown keys are refused and every error names its key path
(``routes[2].breaker.failures: Input should be greater than 0``), so a broken
file stops the gateway at start -- or, on reload, leaves the old config
serving. Secrets are never in this file: it names the environment variable
or file that holds them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from adapters.profile import ProfileSpec
from flags.model import Stage
from gateway.edge.hosts import HostNames, entry_problem
from gateway.edge.hosts import parse as parse_host
from gateway.shadow.compare import REFUSED_COMPARE, pattern_problem

NAME = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
Int = Annotated[int, Strict()]
"""An integer, and only an integer: YAML's ``yes``/``true`` is not 1."""
METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})


class ConfigError(Exception):
    """config.yaml is unreadable or invalid; ``str()`` lists every problem by key path."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Listen(_Frozen):
    host: str = "127.0.0.1"
    port: Int = Field(ge=0, le=65535)


class Limits(_Frozen):
    max_url_bytes: Int = Field(8192, ge=256)
    max_header_bytes: Int = Field(8190, ge=1024)
    max_headers: Int = Field(100, ge=10)
    max_body_bytes: Int = Field(10 * 1024 * 1024, ge=0)
    buffer_body_bytes: Int = Field(64 * 1024, ge=0)
    """Bodies up to this size are buffered so a request can be retried elsewhere."""
    header_read_ms: Int = Field(10_000, gt=0, le=600_000)
    """A client's request head must be complete this long after the connection opened,
    or after its first byte on a kept-alive connection (else 408 and closed)."""
    keepalive_idle_ms: Int = Field(60_000, gt=0, le=3_600_000)
    """A kept-alive connection with no request for this long is closed."""
    body_read_ms: Int = Field(60_000, gt=0, le=3_600_000)
    """The most a request body may take to arrive, from the end of its head."""
    max_connections: Int = Field(4096, ge=16, le=1_000_000)
    """Open connections per process on the proxy listener; past it a new connection is
    answered 503 and closed at once (also capped by the open-file limit, at start)."""


class Timeouts(_Frozen):
    connect_ms: Int = Field(1000, gt=0)
    request_ms: Int = Field(15000, gt=0)
    internal_ms: Int = Field(2000, gt=0)
    """Session-export hook calls and health checks."""


class Secret(_Frozen):
    """Where a secret lives: an environment variable, else a file."""

    env: str | None = None
    file: Path | None = None

    def read(self) -> str | None:
        if self.env and os.environ.get(self.env):
            return os.environ[self.env].strip()
        if self.file and self.file.exists():
            return self.file.read_text().strip() or None
        return None


class NamedSecret(Secret):
    """An admin token with a name: the ledger records who changed what by this name."""

    name: NAME


class Shutdown(_Frozen):
    """SIGTERM: readiness goes false, then listeners close, then in-flight requests finish."""

    drain_s: float = Field(0.0, ge=0, le=600)
    """How long readyz answers 503 (requests still served, with ``Connection: close``)
    before the listeners close: at least the load balancer's probe period times its
    failure threshold. 0 suits a process no load balancer probes."""
    timeout_s: float = Field(30.0, gt=0, le=3600)
    """Then requests in flight get this long to finish; any still running are cut."""


class SessionSync(_Frozen):
    """How far the session bridge may go to keep a session consistent for one request."""

    budget_ms: Int = Field(3000, gt=0, le=60_000)
    """The most one request may spend synchronising its session: Redis round trips,
    the monolith's session hook, waiting for the session's sync lock. Past it the
    request is refused with 503 + Retry-After, never served from a stale copy. The
    sync lock's lease is this plus a second."""
    redis_budget_ms: Int = Field(1000, gt=0, le=60_000)
    """The most one request may spend waiting on Redis for its session work, all round
    trips together (a slow Redis compounds over them, each under ``redis.timeout_ms``).
    Past it the request degrades as in an outage: served by the legacy node that
    provably holds the session's latest state, a legacy answer stands with its node
    marked ahead, otherwise 503 + Retry-After."""

    @model_validator(mode="after")
    def _redis_within_sync(self) -> SessionSync:
        if self.redis_budget_ms > self.budget_ms:
            raise ValueError(f"redis_budget_ms ({self.redis_budget_ms}) must not exceed "
                             f"budget_ms ({self.budget_ms}): the sync's budget includes it")
        return self


def _host_entry(entry: str) -> str:
    problem = entry_problem(entry)
    if problem:
        raise ValueError(f"{entry!r}: {problem}")
    return entry.lower()


def _host_value(value: str) -> str:
    host = parse_host(value)
    if host is None:
        raise ValueError(f"{value!r}: expected a host name or address, optionally with :port")
    return str(host)


def _path_pattern(p: str) -> str:
    body = p[:-2] if p.endswith("/*") else p
    segments = body.split("/")[1:]
    if (not p.startswith("/") or "*" in body or "//" in p or "%" in p
            or any(seg in (".", "..") for seg in segments)
            or re.search(r"[;?#\\\x00-\x20\x7f]", p)):
        raise ValueError(f"{p!r}: a path is '/exact' or '/prefix/*', canonical "
                         "(no '.', '..', '//', '%', ';', '?', '#', '\\' or spaces)")
    return p


HostEntry = Annotated[str, AfterValidator(_host_entry)]
PathPattern = Annotated[str, AfterValidator(_path_pattern)]


class GatewaySection(_Frozen):
    listen: Listen = Listen(port=8080)
    admin_listen: Listen = Listen(port=8081)
    admin_token: Secret = Secret(env="STRANGLER_ADMIN_TOKEN", file=Path(".strangler/admin-token"))
    """The operators' shared token; its name in the ledger is ``admin``."""
    admin_tokens: tuple[NamedSecret, ...] = ()
    """Further tokens, one per person or pipeline, so the ledger can tell them apart."""
    debug_backend_header: bool = False
    trusted_proxies: tuple[str, ...] = ()
    public_hosts: tuple[HostEntry, ...] = ()
    """The names the public listener serves: ``shop.example.com``, ``*.example.com``
    (any name below it), addresses; ports are not compared. Empty: any valid host
    (as before this key existed; logged as a warning at start)."""
    default_host: Annotated[str, AfterValidator(_host_value)] | None = None
    """What a valid Host not in ``public_hosts`` is taken to be (``host[:port]``, itself
    covered by the list). Unset: such a request is refused with 400."""
    admin_hosts: tuple[HostEntry, ...] = ("localhost",)
    """Names the admin listener answers to, besides any IP address and its own listen
    host; another name (a DNS-rebinding page) gets 421."""
    blocked_paths: tuple[PathPattern, ...] | None = None
    """Paths never forwarded (route syntax, any case, checked before routes): 404 from
    the gateway. Unset: the hook's ``/_internal/*`` and ``health.path``."""
    limits: Limits = Limits()
    timeouts: Timeouts = Timeouts()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shadow_concurrency: Int = Field(32, ge=1)
    shutdown: Shutdown = Shutdown()
    session_sync: SessionSync = SessionSync()

    @field_validator("default_host")
    @classmethod
    def _default_listed(cls, value: str | None, info: ValidationInfo) -> str | None:
        listed = info.data.get("public_hosts")
        if value is not None and listed:
            host = parse_host(value)
            if host is None or host.name not in HostNames(tuple(listed)):
                raise ValueError(f"{value!r} is not covered by public_hosts")
        return value


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: expected host:port")
    return value


def _some(nodes: tuple[str, ...]) -> tuple[str, ...]:
    # Not Field(min_length=1): pydantic would add "at least 1 item" to a bad node's error.
    if not nodes:
        raise ValueError("give at least one host:port")
    return nodes


HostPort = Annotated[str, AfterValidator(_host_port)]
Nodes = Annotated[tuple[HostPort, ...], AfterValidator(_some)]


class SentinelSection(_Frozen):
    """A master found through Redis Sentinel; clients follow a failover by themselves."""

    master_name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    nodes: Nodes
    """The sentinels (``host:port``): any one that answers names the current master."""
    password: Secret | None = None
    """The password of the master and its replicas."""
    sentinel_password: Secret | None = None


class ClusterSection(_Frozen):
    """A Redis Cluster; every multi-key operation of ours stays in one hash slot."""

    nodes: Nodes
    """Startup nodes (``host:port``): any reachable one tells the client the rest."""
    password: Secret | None = None


class RedisSection(_Frozen):
    url: str | None = None
    """A single server. None (and no sentinel or cluster): ``strangler demo`` starts a
    private redis-server; the gateway needs one of the three."""
    sentinel: SentinelSection | None = None
    cluster: ClusterSection | None = None
    key_prefix: str = Field("strangler", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    session_ttl_s: Int = Field(86400, ge=60)
    timeout_ms: Int = Field(500, gt=0)
    max_connections: Int = Field(128, ge=8, le=10_000)
    """Connections per process (per node for a cluster). Session work waits up to
    ``timeout_ms`` for a free one; a full pool is overload (503), never an outage."""

    @model_validator(mode="after")
    def _one_topology(self) -> RedisSection:
        given = [name for name in ("url", "sentinel", "cluster") if getattr(self, name)]
        if len(given) > 1:
            raise ValueError(f"give one of url, sentinel, cluster (found {', '.join(given)})")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.url or self.sentinel or self.cluster)


class DatabaseSection(_Frozen):
    url: str = "sqlite+aiosqlite:///.strangler/shop.db"
    ledger_url: str | None = None
    """Where the migration ledger lives; default: ``url``."""


class Node(_Frozen):
    id: NAME
    url: str = Field(pattern=r"^https?://[^/\s]+/?$")


class LegacySection(_Frozen):
    nodes: tuple[Node, ...] = Field(min_length=1)
    internal_token: Secret = Secret(
        env="STRANGLER_INTERNAL_TOKEN", file=Path(".strangler/internal-token")
    )

    @model_validator(mode="after")
    def _unique(self) -> LegacySection:
        _unique_ids([n.id for n in self.nodes], "id")
        return self


class Ejection(_Frozen):
    """Outlier ejection of a failing new instance (Envoy-style)."""

    consecutive_failures: Int = Field(5, gt=0)
    base_ms: Int = Field(5_000, gt=0)
    """Ejected for base x (times ejected), up to ``max_ms``; health checks cannot undo it."""
    max_ms: Int = Field(300_000, gt=0)


class NewSection(_Frozen):
    instances: tuple[Node, ...] = Field(min_length=1)
    ejection: Ejection = Ejection()

    @model_validator(mode="after")
    def _unique(self) -> NewSection:
        _unique_ids([n.id for n in self.instances], "id")
        return self


class Health(_Frozen):
    interval_ms: Int = Field(1000, gt=0)
    path: str = "/healthz"


class TokensSection(_Frozen):
    issuer: str = "strangler-gateway"
    audience: str = "strangler-services"
    ttl_s: Int = Field(300, ge=30)
    private_key_file: Path = Path(".strangler/keys/jwt-private.pem")
    """The Ed25519 signing key (PEM). Replace the file to rotate: every gateway publishes the
    new public key at once and signs with it ``publish_ahead_s`` later (gateway.session.signing)."""
    publish_ahead_s: float = Field(10.0, ge=0, le=600)
    key_check_s: float = Field(2.0, gt=0, le=60)
    """How often the key file is looked at."""
    session_key: Secret = Secret(env="STRANGLER_SESSION_KEY", file=Path(".strangler/session-key"))
    """The key that turns a session id into its handle (adapters.handles), the only name
    tokens and Redis use for a session: the gateway and every service that creates
    sessions share it; at least 32 bytes."""
    jwks_file: Path = Path(".strangler/keys/jwks.json")


class UnleashSection(_Frozen):
    """A real Unleash server holds the flags (``flags.provider: unleash``)."""

    url: str = Field(pattern=r"^https?://[^/\s]+(/[^\s]*)?$")
    """The server, e.g. ``http://127.0.0.1:4242`` (``/api`` may be given or not)."""
    environment: str = "development"
    project: str = "default"
    refresh_interval_s: Int = Field(15, ge=1)
    """How often the SDK polls: a flip reaches a gateway within this plus ~1 s."""
    metrics_interval_s: Int = Field(60, ge=1)
    client_token: Secret = Secret(env="UNLEASH_CLIENT_TOKEN")
    """A backend (client) API token for ``environment``: the gateway reads flags with it."""
    admin_token: Secret = Secret(env="UNLEASH_ADMIN_TOKEN")
    """An admin API token: only the admin API and ``strangler flags`` write with it."""
    snapshot_file: Path = Path(".strangler/unleash-snapshot.json")
    """The last fetched flags, used when Unleash is unreachable at start."""


class FlagsSection(_Frozen):
    provider: Literal["local", "unleash"] = "local"
    kill_switch: bool = False
    """Local provider only: with Unleash, the kill switch is the ``strangler.kill-switch``
    feature."""
    app_name: str = "strangler-gateway"
    poll_interval_ms: Int = Field(500, gt=0, le=1000)
    unleash: UnleashSection | None = Field(None, validate_default=True)

    @field_validator("unleash")
    @classmethod
    def _unleash(cls, value: UnleashSection | None,
                 info: ValidationInfo) -> UnleashSection | None:
        if value is None and info.data.get("provider") == "unleash":
            raise ValueError("required when provider is unleash")
        return value


class Fallback(_Frozen):
    """When a request that failed on new is retried on legacy. Data, not code.

    Each rule rests on an assumption (gateway/routing/fallback.py): a safe method is
    idempotent; a refused connection never reached new; a keyed write is safe
    to send again only where both backends share one idempotency store -- a
    fact about the deployment the gateway cannot know, so it is off unless said.
    """

    safe_methods: tuple[str, ...] = ("GET", "HEAD", "OPTIONS")
    on: tuple[Literal["connect", "reset", "timeout", "protocol", "5xx"], ...] = (
        "connect", "reset", "timeout", "protocol", "5xx",
    )
    shared_idempotency_store: Annotated[bool, Strict()] = False
    """True only if legacy and new record ``Idempotency-Key``s in one shared store, so a
    write new may have done, sent again to legacy with the same key, is answered with
    new's result instead of done twice. Then such a write falls back; otherwise the
    client gets new's failure (and retries with its key once new is back)."""


class Breaker(_Frozen):
    failures: Int = Field(5, gt=0)
    cooldown_ms: Int = Field(10_000, gt=0)


class RetryBudget(_Frozen):
    """Fallback retries per route: at most ``ratio`` of the route's requests over the last
    ``window_s`` seconds, plus ``min_retries`` per window so a quiet route can still retry."""

    ratio: float = Field(0.2, ge=0, le=1)
    min_retries: Int = Field(10, ge=0)
    window_s: Int = Field(10, gt=0)


def _ignore_path(pattern: str) -> str:
    problem = pattern_problem(pattern)
    if problem:
        raise ValueError(f"{pattern!r}: {problem}")
    return pattern


def _header_name(name: str) -> str:
    if name != "*" and not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
        raise ValueError(f"{name!r} is not a header name")
    return name


def _compared_header(name: str) -> str:
    if name.lower() in REFUSED_COMPARE:
        raise ValueError(f"{name!r} differs on every response; it is never compared")
    return _header_name(name)


class ShadowSection(_Frozen):
    """The shadow stage of one route: what is copied to new and how answers are compared."""

    sample_rate: float = Field(1.0, ge=0, le=1)
    """Share of safe requests copied to new."""
    ignore_paths: tuple[Annotated[str, AfterValidator(_ignore_path)], ...] = ()
    """JSON-pointer patterns never compared: ``/orders/*/created_at``, ``/**/id``."""
    ignore_headers: tuple[Annotated[str, AfterValidator(_header_name)], ...] = ()
    compare_headers: tuple[Annotated[str, AfterValidator(_compared_header)], ...] = (
        "Content-Type",)
    """Response headers compared (``*``: all but those that differ by nature)."""
    learn_noise: bool = True
    """Send a share of shadowed requests to legacy twice; what differs there is noise."""
    noise_sample_rate: float = Field(0.1, ge=0, le=1)
    noise_threshold: Int = Field(3, ge=1)
    """A path is noise once it differed between two legacy answers this many times."""
    diff_log_size: Int = Field(50, ge=0, le=10_000)


class RouteSection(_Frozen):
    name: NAME
    paths: tuple[str, ...] = Field(min_length=1)
    methods: tuple[str, ...] | None = None
    stage: Stage = Stage.LEGACY
    percent: Int = Field(0, ge=0, le=100)
    legacy_only: bool = False
    """A route with no new implementation: always legacy, its flag cannot be moved."""
    group: NAME | None = None
    """Routes that share session writes (the demo's cart and checkout) form a group: they always
    have the same stage and percentage, move together, and put a session on the same side."""
    pin: bool = False
    """Once migrated, stay migrated: a session served by new in a canary stays on new when
    the percentage is lowered, until the route goes back to legacy or is unpinned."""
    service: NAME | None = None
    """The new service behind the route: the audience of the tokens it is sent, so a token
    for one service is refused by another (default: ``tokens.audience``, shared)."""
    guests: bool = False
    """New may serve this route to a session with no user: such a session gets a token that
    names the session and no user. Off: a guest's request reaches new with no token."""
    fallback: Fallback = Fallback()
    breaker: Breaker = Breaker()
    retry_budget: RetryBudget = RetryBudget()
    shadow: ShadowSection = ShadowSection()

    @field_validator("paths")
    @classmethod
    def _paths(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for p in paths:
            _path_pattern(p)
        return paths

    @field_validator("methods")
    @classmethod
    def _methods(cls, methods: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if methods is not None:
            bad = [m for m in methods if m not in METHODS]
            if bad:
                raise ValueError(f"unknown method(s) {bad}; use {sorted(METHODS)}")
        return methods

    @model_validator(mode="after")
    def _stage(self) -> RouteSection:
        if self.legacy_only and self.stage is not Stage.LEGACY:
            raise ValueError("a legacy_only route must have stage legacy")
        if self.stage is not Stage.CANARY and self.percent not in (0, 100):
            raise ValueError("percent applies to the canary stage only")
        return self


class Config(_Frozen):
    gateway: GatewaySection = GatewaySection()
    redis: RedisSection = RedisSection()
    database: DatabaseSection = DatabaseSection()
    legacy: LegacySection
    new: NewSection
    health: Health = Health()
    tokens: TokensSection = TokensSection()
    session: ProfileSpec
    """The monolith's session: cookie, identity, fields and merge rules (README,
    "Session profiles"). Required: without it the gateway would bridge nothing."""
    flags: FlagsSection = FlagsSection()
    routes: tuple[RouteSection, ...] = Field(min_length=1)



_RENAMED = {
    "unsafe_with_idempotency_key": (
        "no longer a key: a keyed write falls back only with shared_idempotency_store: "
        "true, which says both backends share one idempotency store (default false)"),
}
"""Keys that were renamed: the error says what replaced them, not only "unknown key"."""


def _unique_ids(ids: list[str], what: str) -> None:
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate {what}: {', '.join(dupes)}")


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "tagged-")):
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def parse(data: Any, source: str = "config") -> Config:
    """Validate a loaded YAML document; raise ConfigError naming every bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = _RENAMED.get(str(err["loc"][-1]), "unknown key")
            lines.append(f"{_path(err['loc'])}: {msg}")
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(lines)) from None
    lines = _route_conflicts(config)
    if lines:
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(lines))
    return config


def _route_conflicts(config: Config) -> list[str]:
    """Checks across routes, reported at the entry that conflicts with an earlier one."""
    problems = []
    names: dict[str, int] = {}
    paths: dict[str, str] = {}
    for i, r in enumerate(config.routes):
        if r.name in names:
            problems.append(f"routes[{i}].name: duplicate route name {r.name!r} "
                            f"(also routes[{names[r.name]}])")
        names.setdefault(r.name, i)
        for j, p in enumerate(r.paths):
            if p in paths:
                problems.append(f"routes[{i}].paths[{j}]: {p!r} is already claimed by "
                                f"{paths[p]}")
            paths.setdefault(p, f"routes[{i}] ({r.name})")
    return problems + _group_splits(config)


def _stage_text(r: RouteSection) -> str:
    return f"canary {r.percent}%" if r.stage is Stage.CANARY else r.stage.value


def _group_splits(config: Config) -> list[str]:
    """A group moves as one: same stage and percentage, never legacy_only."""
    problems = []
    first: dict[str, tuple[int, RouteSection]] = {}
    for i, r in enumerate(config.routes):
        if r.group is None:
            continue
        if r.legacy_only:
            problems.append(f"routes[{i}].group: a legacy_only route cannot join a group")
            continue
        j, lead = first.setdefault(r.group, (i, r))
        if (r.stage, r.percent) != (lead.stage, lead.percent):
            problems.append(
                f"routes[{i}].stage: group {r.group!r} would be split: {r.name} is "
                f"{_stage_text(r)} but routes[{j}] ({lead.name}) is {_stage_text(lead)}")
        if r.pin != lead.pin:
            problems.append(f"routes[{i}].pin: every route of group {r.group!r} pins alike")
    return problems


def load(path: str | Path) -> Config:
    """Read and validate a config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse(data, str(path))
