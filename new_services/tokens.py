"""Verifying the gateway-minted identity token (docs/protocol.md section 6).

EdDSA only (``adapters.claims.ALGORITHMS``), every claim of
``adapters.claims.REQUIRED_CLAIMS`` required, ``aud`` and ``iss`` checked, the
key picked by the token's ``kid`` from the gateway's key set (a JWKS file at start,
then the gateway's ``/.well-known/jwks.json``, refreshed on an unknown ``kid``: keys
rotate without a restart), ``aud`` the service's own name. A verified token is cached
(bounded, keyed by the token string) until its ``exp``, so the gateway's reuse
of one token per session costs one signature check, not one per request.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import structlog

from adapters.claims import ALGORITHMS, REQUIRED_CLAIMS, ClaimsError, Identity, identity_from_claims

MAX_TOKEN_CHARS = 4096
log = structlog.get_logger("new_services.tokens")


class InvalidToken(Exception):
    """The identity header is present but is not a token we accept (always a 401)."""


def load_jwks(path: Path) -> dict[str, jwt.PyJWK]:
    """``kid`` -> public key, from a standard JWKS file; only Ed25519 keys with a kid."""
    return parse_jwks(json.loads(path.read_text()), str(path))


def parse_jwks(data: Any, where: str) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    try:
        found = jwt.PyJWKSet.from_dict(data).keys
    except (jwt.PyJWTError, AttributeError, TypeError, KeyError) as exc:
        raise ValueError(f"{where}: not a JWKS ({type(exc).__name__})") from None
    for jwk in found:
        if jwk.key_id and jwk.key_type == "OKP" and jwk.algorithm_name in ALGORITHMS:
            keys[jwk.key_id] = jwk
    if not keys:
        raise ValueError(f"{where}: no Ed25519 key with a 'kid'")
    return keys


@dataclass(frozen=True, slots=True)
class _Cached:
    identity: tuple[Identity, str | list[str]]
    """The identity and the token's ``aud`` (one service, or a list)."""
    exp: float


class TokenCache:
    """A bounded LRU of verified tokens, each valid until its own ``exp``."""

    def __init__(self, max_size: int) -> None:
        self._max = max_size
        self._items: OrderedDict[str, _Cached] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, token: str, now: float) -> tuple[Identity, str | list[str]] | None:
        hit = self._items.get(token)
        if hit is None:
            return None
        if now >= hit.exp:
            del self._items[token]
            return None
        self._items.move_to_end(token)
        return hit.identity

    def put(self, token: str, identity: tuple[Identity, str | list[str]], exp: float) -> None:
        if self._max == 0:
            return
        self._items[token] = _Cached(identity, exp)
        self._items.move_to_end(token)
        while len(self._items) > self._max:
            self._items.popitem(last=False)


class UnknownKey(InvalidToken):
    """The token names a ``kid`` this instance does not hold (yet): a rotation may have
    published it; refresh the key set and try once more."""


class KeySet:
    """The gateway's public keys: from a JWKS file at start, then from the gateway's
    ``/.well-known/jwks.json`` (``url``) -- at most once a second when a token names an
    unknown ``kid``, and every ``refresh_s``. A key the gateway no longer publishes is
    dropped at the next successful fetch."""

    def __init__(self, keys: dict[str, jwt.PyJWK], url: str | None = None, *,
                 min_interval_s: float = 1.0, refresh_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = keys
        self.url = url
        self._min_interval = min_interval_s
        self.refresh_s = refresh_s
        self._clock = clock
        self._last = -min_interval_s
        self._lock = asyncio.Lock()

    def get(self, kid: object) -> jwt.PyJWK | None:
        # A dict lookup, never a path: '../x' or a non-string simply is no key.
        return self._keys.get(kid) if isinstance(kid, str) else None

    async def refresh(self, session: aiohttp.ClientSession) -> bool:
        """Fetch the key set if allowed now; True if it changed what this instance holds."""
        if self.url is None:
            return False
        async with self._lock:
            if self._clock() - self._last < self._min_interval:
                return False
            self._last = self._clock()
            try:
                async with session.get(self.url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status != 200:
                        raise ValueError(f"HTTP {r.status}")
                    fetched = parse_jwks(await r.json(content_type=None), self.url)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("jwks_fetch_failed", url=self.url, reason=str(exc) or repr(exc))
                return False
            changed = fetched.keys() != self._keys.keys()
            self._keys = fetched
            if changed:
                log.info("jwks_refreshed", kids=sorted(fetched))
            return changed


class TokenVerifier:
    """Turns an identity header into an ``Identity`` for one service, or raises
    ``InvalidToken``."""

    def __init__(
        self,
        keys: dict[str, jwt.PyJWK] | KeySet,
        *,
        issuer: str,
        leeway_s: int = 5,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys if isinstance(keys, KeySet) else KeySet(keys)
        self._issuer = issuer
        self._leeway = leeway_s
        self._cache = TokenCache(cache_size)
        self._clock = clock

    def verify(self, token: str, audience: str, *, guests: bool = False) -> Identity:
        """The identity ``token`` names for the service ``audience``: a token minted for
        another service is refused, and a guest's only where ``guests``."""
        now = self._clock()
        cached = self._cache.get(token, now)
        if cached is not None:
            aud = cached[1]
            if audience != aud and not (isinstance(aud, list) and audience in aud):
                raise InvalidToken("the token is for another service")
            if cached[0].user_id is None and not guests:
                raise InvalidToken("a guest token, and guests are not served here")
            return cached[0]
        claims = self._decode(token, audience)
        try:
            identity = identity_from_claims(claims, guests=True)
        except ClaimsError as exc:
            raise InvalidToken(str(exc)) from exc
        self._cache.put(token, (identity, claims["aud"]), float(claims["exp"]))
        if identity.user_id is None and not guests:
            raise InvalidToken("a guest token, and guests are not served here")
        return identity

    def _decode(self, token: str, audience: str) -> dict[str, Any]:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("token missing or too long")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            jwk = self.keys.get(kid)
            if jwk is None:
                raise UnknownKey("unknown or missing kid")
            return jwt.decode(
                token,
                jwk.key,
                algorithms=list(ALGORITHMS),
                audience=audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from exc
        except (ValueError, TypeError) as exc:  # malformed segments deep in decoding
            raise InvalidToken(type(exc).__name__) from exc
