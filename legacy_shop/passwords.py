"""argon2id password hashing; verification runs in a worker thread.

Hashing costs tens of milliseconds of CPU by design, which must not stall the
event loop that serves every other request of the node.
"""

from __future__ import annotations

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


@cache
def _dummy_hash() -> str:
    # Compared against when the user does not exist, so that "no such user"
    # and "wrong password" take the same time.
    return _HASHER.hash("not-a-real-password")


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; ``None`` (unknown user) never matches."""
    return await asyncio.to_thread(_verify, password_hash, password)
