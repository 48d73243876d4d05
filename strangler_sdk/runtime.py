"""One service's SDK objects, wired from ``SdkSettings``: the token verifier (and its key
refresher) and the shared sessions. Framework-neutral: ``open`` at start, ``close`` at
stop; ``strangler_sdk.aiohttp.setup`` does both for an aiohttp app."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from .config import SdkSettings
from .redis_client import RedisClient
from .sessions import SharedSessions
from .tokens import KeySet, TokenVerifier, load_jwks


@dataclass(slots=True)
class Strangler:
    """The verifier and the sessions of one service instance."""

    settings: SdkSettings
    verifier: TokenVerifier
    sessions: SharedSessions
    redis: RedisClient
    _refresher: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    async def open(cls, settings: SdkSettings, redis: RedisClient) -> Strangler:
        """Load the JWKS file, fetch the JWKS URL (one of them must give keys), and keep
        the keys fresh in a background task until ``close``."""
        keys = await asyncio.to_thread(load_jwks, settings.jwks_file) \
            if settings.jwks_file is not None else {}
        keyset = KeySet(keys, settings.jwks_url, refresh_s=settings.jwks_refresh_s)
        if settings.jwks_url is not None:
            await keyset.refresh()
        if not keyset.kids:
            raise RuntimeError(f"no signing keys from {settings.jwks_file or settings.jwks_url}")
        verifier = TokenVerifier(keyset, issuer=settings.issuer, leeway_s=settings.leeway_s,
                                 cache_size=settings.token_cache_size)
        sessions = SharedSessions(redis, prefix=settings.key_prefix,
                                  ttl_s=settings.session_ttl_s, profile=settings.profile,
                                  write_budget_s=settings.write_budget_s,
                                  cas_attempts=settings.cas_attempts,
                                  handle_key=settings.session_key)
        self = cls(settings, verifier, sessions, redis)
        if settings.jwks_url is not None:
            self._refresher = asyncio.create_task(_later(keyset))
        return self

    async def close(self) -> None:
        """Stop the key refresher (the Redis client stays the caller's to close)."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher


async def _later(keyset: KeySet) -> None:
    await asyncio.sleep(keyset.refresh_s)  # just fetched at start
    await keyset.keep_fresh()
