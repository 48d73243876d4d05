"""Session -> JWT claims, and validated claims -> identity.

The gateway mints one short-lived token per session and service (EdDSA,
``kid`` header) and reuses it until shortly before it expires; a new service
verifies it with an algorithm allow-list and requires ``exp``, ``iat``,
``aud``, ``iss`` and ``sid``. ``sub`` is the user id as a string, whatever its
form in the monolith (digits, a UUID, an e-mail address); a guest's token has
no ``sub`` and says ``"guest": true`` (only routes that allow guests get one).
``name`` is the display name when the profile declares one; the profile's
further identity claims travel under their own names. Signing and verifying are I/O-free but need
keys, so they live with each side; this module only decides what the claims say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

ALGORITHMS: Final = ("EdDSA",)
"""The only algorithms a service accepts. Never ``none``, never HS* with a public key."""

REQUIRED_CLAIMS: Final = ("exp", "iat", "iss", "aud", "sid")
_OWN: Final = frozenset({"iss", "aud", "sub", "sid", "name", "iat", "nbf", "exp", "jti",
                         "guest"})


class ClaimsError(ValueError):
    """Claims that verified cryptographically but do not name a session and user."""


@dataclass(frozen=True, slots=True)
class Identity:
    session_id: str
    user_id: str | None
    """The monolith's user id as text (``"7"``, ``"u-1001"``); None for a guest."""
    name: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    """The profile's further identity claims."""


def session_claims(
    identity: Identity, *, issuer: str, audience: str | list[str], now: int, ttl_s: int
) -> dict[str, Any]:
    claims: dict[str, Any] = {k: v for k, v in identity.claims.items() if k not in _OWN}
    claims.update({
        "iss": issuer,
        "aud": audience,
        "sid": identity.session_id,
        "iat": now,
        "nbf": now - 5,
        "exp": now + ttl_s,
    })
    if identity.user_id is None:
        claims["guest"] = True
    else:
        claims["sub"] = identity.user_id
    if identity.name is not None:
        claims["name"] = identity.name
    return claims


def identity_from_claims(claims: dict[str, Any], *, guests: bool = False) -> Identity:
    """The identity the claims name; a guest's (no user) only when ``guests``."""
    sub, sid, name = claims.get("sub"), claims.get("sid"), claims.get("name")
    if sub is None and claims.get("guest") is True:
        if not guests:
            raise ClaimsError("a guest token, and guests are not served here")
        if not isinstance(sid, str) or not sid:
            raise ClaimsError("sid missing")
        return Identity(session_id=sid, user_id=None)
    if not isinstance(sub, str) or not sub:
        raise ClaimsError("sub must be a user id")
    if not isinstance(sid, str) or not sid:
        raise ClaimsError("sid missing")
    if name is not None and not isinstance(name, str):
        raise ClaimsError("name must be a string")
    extra = {k: v for k, v in claims.items() if k not in _OWN}
    return Identity(session_id=sid, user_id=sub, name=name, claims=extra)
