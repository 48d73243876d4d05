"""Password checks against the monolith's argon2id hashes, in constant time.

An unknown user costs the same as a wrong password: we verify against a dummy
hash made with the same parameters, so response time does not reveal whether a
username exists. Hashing is CPU-bound and runs off the event loop.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


def make_hasher() -> PasswordHasher:
    """The monolith's parameters (OWASP's argon2id minimum); the dummy must cost the same."""
    return PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


class Passwords:
    """Verifies a password against a stored hash, or against a dummy one for unknown users."""

    def __init__(self, hasher: PasswordHasher, dummy_hash: str) -> None:
        self._hasher = hasher
        self._dummy = dummy_hash

    @classmethod
    async def create(cls) -> Passwords:
        hasher = make_hasher()
        dummy = await asyncio.to_thread(hasher.hash, secrets.token_urlsafe(16))
        return cls(hasher, dummy)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._verify, stored_hash, password)

    def _verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            ok = self._hasher.verify(stored_hash or self._dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return ok and stored_hash is not None
