"""An SDK runtime (``strangler_sdk.runtime.Strangler``) around a given verifier, for apps
built inline in tests that verify tokens but read no session."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from strangler_sdk.config import SdkSettings
from strangler_sdk.runtime import Strangler
from strangler_sdk.sessions import SharedSessions
from strangler_sdk.tokens import TokenVerifier


def with_verifier(verifier: TokenVerifier, redis_url: str = "redis://127.0.0.1:6379/0"
                  ) -> Strangler:
    """The client connects only if a test reads a session."""
    redis = Redis.from_url(redis_url)
    return Strangler(SdkSettings(jwks_file=Path("unused")), verifier,
                     SharedSessions(redis, prefix="unused"), redis)
