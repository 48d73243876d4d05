"""Settings of one service instance: immutable, typed, with named defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from strangler_sdk.redis_client import HostPort, SentinelSpec

DEFAULT_SESSION_TTL_S = 86400
DEFAULT_JWT_ISSUER = "strangler-gateway"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything an instance needs to know; built once by the CLI (or a test)."""

    instance_id: str
    database_url: str
    redis_url: str
    """A single server; unused when ``redis_sentinel`` or ``redis_cluster`` is given."""
    jwks_path: Path
    redis_sentinel: SentinelSpec | None = None
    redis_cluster: tuple[HostPort, ...] = ()
    redis_password: str | None = field(default=None, repr=False)
    """For sentinel and cluster (a URL carries its own)."""
    redis_sentinel_password: str | None = field(default=None, repr=False)
    key_prefix: str = "strangler"
    session_key: bytes = field(default=b"", repr=False)
    """Derives a new session's handle (``adapters.handles``), as the gateway does: needed
    to log in on new. From ``$STRANGLER_SESSION_KEY``."""
    session_ttl_s: int = DEFAULT_SESSION_TTL_S
    jwks_url: str | None = None
    """The gateway's ``/.well-known/jwks.json``: rotated keys are fetched from it."""
    jwt_issuer: str = DEFAULT_JWT_ISSUER
    # A few seconds absorb clock skew between the gateway's host and ours.
    jwt_leeway_s: int = 5
    token_cache_size: int = 10_000
    # Enough for dozens of writers racing on one session; each retry re-reads.
    cas_attempts: int = 50
    # Bodies are tiny JSON objects; refuse anything large before parsing it.
    max_body_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        if self.session_ttl_s <= 0:
            raise ValueError("session_ttl_s: must be > 0")
        if self.cas_attempts <= 0:
            raise ValueError("cas_attempts: must be > 0")
        if self.token_cache_size < 0:
            raise ValueError("token_cache_size: must be >= 0")
        if not self.instance_id:
            raise ValueError("instance_id: must not be empty")
        if self.redis_sentinel is not None and self.redis_cluster:
            raise ValueError("redis: give a sentinel set-up or a cluster, not both")
