"""Verifying the gateway-minted identity token (docs/protocol.md section 6).

EdDSA only (``adapters.claims.ALGORITHMS``), every claim of
``adapters.claims.REQUIRED_CLAIMS`` required, ``aud`` and ``iss`` checked, the
key picked by the token's ``kid`` from a JWKS file. A verified token is cached
(bounded, keyed by the token string) until its ``exp``, so the gateway's reuse
of one token per session costs one signature check, not one per request.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from adapters.claims import ALGORITHMS, REQUIRED_CLAIMS, ClaimsError, Identity, identity_from_claims

MAX_TOKEN_CHARS = 4096


class InvalidToken(Exception):
    """The identity header is present but is not a token we accept (always a 401)."""


def load_jwks(path: Path) -> dict[str, jwt.PyJWK]:
    """``kid`` -> public key, from a standard JWKS file; only Ed25519 keys with a kid."""
    data = json.loads(path.read_text())
    keys: dict[str, jwt.PyJWK] = {}
    for jwk in jwt.PyJWKSet.from_dict(data).keys:
        if jwk.key_id and jwk.key_type == "OKP" and jwk.algorithm_name in ALGORITHMS:
            keys[jwk.key_id] = jwk
    if not keys:
        raise ValueError(f"{path}: no Ed25519 key with a 'kid'")
    return keys


@dataclass(frozen=True, slots=True)
class _Cached:
    identity: Identity
    exp: float


class TokenCache:
    """A bounded LRU of verified tokens, each valid until its own ``exp``."""

    def __init__(self, max_size: int) -> None:
        self._max = max_size
        self._items: OrderedDict[str, _Cached] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, token: str, now: float) -> Identity | None:
        hit = self._items.get(token)
        if hit is None:
            return None
        if now >= hit.exp:
            del self._items[token]
            return None
        self._items.move_to_end(token)
        return hit.identity

    def put(self, token: str, identity: Identity, exp: float) -> None:
        if self._max == 0:
            return
        self._items[token] = _Cached(identity, exp)
        self._items.move_to_end(token)
        while len(self._items) > self._max:
            self._items.popitem(last=False)


class TokenVerifier:
    """Turns an identity header into an ``Identity`` or raises ``InvalidToken``."""

    def __init__(
        self,
        keys: dict[str, jwt.PyJWK],
        *,
        issuer: str,
        audience: str,
        leeway_s: int = 5,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_s
        self._cache = TokenCache(cache_size)
        self._clock = clock

    def verify(self, token: str) -> Identity:
        now = self._clock()
        cached = self._cache.get(token, now)
        if cached is not None:
            return cached
        claims = self._decode(token)
        try:
            identity = identity_from_claims(claims)
        except ClaimsError as exc:
            raise InvalidToken(str(exc)) from exc
        self._cache.put(token, identity, float(claims["exp"]))
        return identity

    def _decode(self, token: str) -> dict[str, Any]:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("token missing or too long")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            # A dict lookup, never a path: '../x' or a non-string simply is no key.
            jwk = self._keys.get(kid) if isinstance(kid, str) else None
            if jwk is None:
                raise InvalidToken("unknown or missing kid")
            return jwt.decode(
                token,
                jwk.key,
                algorithms=list(ALGORITHMS),
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from exc
        except (ValueError, TypeError) as exc:  # malformed segments deep in decoding
            raise InvalidToken(type(exc).__name__) from exc
