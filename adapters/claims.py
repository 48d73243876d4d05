"""Session -> JWT claims, and validated claims -> identity.

The gateway mints one short-lived token per session (EdDSA, ``kid`` header)
and reuses it until shortly before it expires; a new service verifies it
with an algorithm allow-list and requires ``exp``, ``iat``, ``aud``, ``iss``,
``sub`` and ``sid``. Signing and verifying are I/O-free but need keys, so they
live with each side; this module only decides what the claims say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

ALGORITHMS: Final = ("EdDSA",)
"""The only algorithms a service accepts. Never ``none``, never HS* with a public key."""

REQUIRED_CLAIMS: Final = ("exp", "iat", "iss", "aud", "sub", "sid")


class ClaimsError(ValueError):
    """Claims that verified cryptographically but do not name a session and user."""


@dataclass(frozen=True, slots=True)
class Identity:
    session_id: str
    user_id: int
    username: str


def session_claims(
    identity: Identity, *, issuer: str, audience: str, now: int, ttl_s: int
) -> dict[str, Any]:
    return {
        "iss": issuer,
        "aud": audience,
        "sub": str(identity.user_id),
        "name": identity.username,
        "sid": identity.session_id,
        "iat": now,
        "nbf": now - 5,
        "exp": now + ttl_s,
    }


def identity_from_claims(claims: dict[str, Any]) -> Identity:
    sub, sid, name = claims.get("sub"), claims.get("sid"), claims.get("name")
    if not isinstance(sub, str) or not sub.isdigit():
        raise ClaimsError("sub must be a user id")
    if not isinstance(sid, str) or not sid:
        raise ClaimsError("sid missing")
    if not isinstance(name, str):
        raise ClaimsError("name missing")
    return Identity(session_id=sid, user_id=int(sub), username=name)
