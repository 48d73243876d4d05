"""Verifying the gateway's identity token (docs/protocol.md section 6).

EdDSA only (``adapters.claims.ALGORITHMS``), a ``kid`` in the header naming a
key of the gateway's key set, every claim of ``adapters.claims.REQUIRED_CLAIMS``
required, ``iss`` and ``aud`` checked, a few seconds of leeway. The key set
comes from a JWKS file (for a start before any gateway answers) and/or the
gateway's ``/.well-known/jwks.json``: fetched at start, every ``refresh_s`` and
again when a token names an unknown ``kid`` (at most once every
``min_interval_s``, so forged ``kid``s cannot make us hammer the gateway); a key
the set no longer lists is dropped. A verified token is cached (bounded, keyed
by the token) until its ``exp``. PyJWT does the cryptography.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import structlog

from adapters.claims import ALGORITHMS, REQUIRED_CLAIMS, ClaimsError, Identity, identity_from_claims

from .errors import InvalidToken, UnknownKey

MAX_TOKEN_CHARS = 4096
FETCH_TIMEOUT_S = 2.0
log = structlog.get_logger("strangler_sdk.tokens")

Fetch = Callable[[str], Awaitable[Any]]
"""URL -> the parsed JSON it serves (raises on any failure)."""


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


async def fetch_json(url: str) -> Any:
    """GET ``url`` (http or https only) and parse its JSON body; in a thread, so the core
    needs no HTTP client library."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url}: only http(s) URLs")

    def get() -> Any:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as r:  # noqa: S310 (checked)
            return json.loads(r.read(1 << 20))
    return await asyncio.to_thread(get)


class KeySet:
    """The gateway's public keys, by ``kid``."""

    def __init__(self, keys: dict[str, jwt.PyJWK] | None = None, url: str | None = None, *,
                 min_interval_s: float = 1.0, refresh_s: float = 60.0,
                 fetch: Fetch = fetch_json,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = keys if keys is not None else {}
        self.url = url
        self._min_interval = min_interval_s
        self.refresh_s = refresh_s
        self._fetch = fetch
        self._clock = clock
        self._last = -min_interval_s
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many fetches were made (for tests and metrics)."""

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def get(self, kid: object) -> jwt.PyJWK | None:
        # A dict lookup, never a path: '../x' or a non-string simply is no key.
        return self._keys.get(kid) if isinstance(kid, str) else None

    async def refresh(self) -> bool:
        """Fetch the key set if allowed now; True if what this instance holds changed."""
        if self.url is None:
            return False
        async with self._lock:
            if self._clock() - self._last < self._min_interval:
                return False
            self._last = self._clock()
            self.fetches += 1
            try:
                fetched = parse_jwks(await self._fetch(self.url), self.url)
            except (OSError, TimeoutError, ValueError) as exc:
                log.warning("jwks_fetch_failed", url=self.url, reason=str(exc) or repr(exc))
                return False
            changed = fetched.keys() != self._keys.keys()
            self._keys = fetched
            if changed:
                log.info("jwks_refreshed", kids=sorted(fetched))
            return changed

    async def keep_fresh(self) -> None:
        """Refresh now and every ``refresh_s`` until cancelled (run it as a task)."""
        if self.url is None:
            return
        while True:
            await self.refresh()
            await asyncio.sleep(self.refresh_s)


@dataclass(frozen=True, slots=True)
class _Cached:
    identity: Identity
    aud: str | list[str]
    exp: float


class TokenCache:
    """A bounded LRU of verified tokens, each valid until its own ``exp``."""

    def __init__(self, max_size: int) -> None:
        self._max = max_size
        self._items: OrderedDict[str, _Cached] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, token: str, now: float) -> _Cached | None:
        hit = self._items.get(token)
        if hit is None:
            return None
        if now >= hit.exp:
            del self._items[token]
            return None
        self._items.move_to_end(token)
        return hit

    def put(self, token: str, identity: Identity, aud: str | list[str], exp: float) -> None:
        if self._max == 0:
            return
        self._items[token] = _Cached(identity, aud, exp)
        self._items.move_to_end(token)
        while len(self._items) > self._max:
            self._items.popitem(last=False)


class TokenVerifier:
    """Turns an identity header into an ``Identity`` for one service (its ``aud``), or
    raises ``InvalidToken``."""

    def __init__(self, keys: dict[str, jwt.PyJWK] | KeySet, *, issuer: str,
                 leeway_s: int = 5, cache_size: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = keys if isinstance(keys, KeySet) else KeySet(keys)
        self._issuer = issuer
        self._leeway = leeway_s
        self._cache = TokenCache(cache_size)
        self._clock = clock

    async def identify(self, token: str, audience: str, *, guests: bool = False) -> Identity:
        """``verify``, refreshing the key set once when the token names an unknown ``kid``
        (a key the gateway published since we last looked)."""
        try:
            return self.verify(token, audience, guests=guests)
        except UnknownKey:
            if not await self.keys.refresh():
                raise
            return self.verify(token, audience, guests=guests)

    def verify(self, token: str, audience: str, *, guests: bool = False) -> Identity:
        """The identity ``token`` names for the service ``audience``: a token minted for
        another service is refused, and a guest's unless ``guests``."""
        cached = self._cache.get(token, self._clock())
        if cached is None:
            claims = self._decode(token, audience)
            try:
                identity = identity_from_claims(claims, guests=True)
            except ClaimsError as exc:
                raise InvalidToken(str(exc)) from exc
            cached = _Cached(identity, claims["aud"], float(claims["exp"]))
            self._cache.put(token, identity, claims["aud"], cached.exp)
        aud = cached.aud
        if audience != aud and not (isinstance(aud, list) and audience in aud):
            raise InvalidToken("the token is for another service")
        if cached.identity.user_id is None and not guests:
            raise InvalidToken("a guest token, and guests are not served here")
        return cached.identity

    def _decode(self, token: str, audience: str) -> dict[str, Any]:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("token missing or too long")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            jwk = self.keys.get(kid)
            if jwk is None:
                raise UnknownKey("unknown or missing kid")
            return jwt.decode(token, jwk.key, algorithms=list(ALGORITHMS), audience=audience,
                              issuer=self._issuer, leeway=self._leeway,
                              options={"require": list(REQUIRED_CLAIMS)})
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from exc
        except (ValueError, TypeError) as exc:  # malformed segments deep in decoding
            raise InvalidToken(type(exc).__name__) from exc
