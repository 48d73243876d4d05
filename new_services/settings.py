"""Settings of one service instance: immutable, typed, with named defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_SESSION_TTL_S = 86400
DEFAULT_JWT_ISSUER = "strangler-gateway"
DEFAULT_JWT_AUDIENCE = "strangler-services"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything an instance needs to know; built once by the CLI (or a test)."""

    instance_id: str
    database_url: str
    redis_url: str
    jwks_path: Path
    key_prefix: str = "strangler"
    session_ttl_s: int = DEFAULT_SESSION_TTL_S
    jwt_issuer: str = DEFAULT_JWT_ISSUER
    jwt_audience: str = DEFAULT_JWT_AUDIENCE
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
