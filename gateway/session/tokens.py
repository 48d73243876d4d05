"""JWTs for the new services: minted once per session, reused until near expiry.

A token carries the session handle and the user (``adapters.claims``) and is
signed with the gateway's Ed25519 key (EdDSA; ``kid``: the key's thumbprint,
``gateway.session.signing``, which also rotates it). A session
costs one signature per ``ttl - refresh_margin`` seconds, not one per request.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.claims import Identity, session_claims
from gateway.session.signing import KeyRing, SigningKeyError, load_private_key, public_jwk
from gateway.settings import TokensSection

ANONYMOUS = ""
"""``cached``'s answer for a known guest on a route that does not serve guests: no token,
and no need to read the store to know it."""


class TokenMinter:
    """Mints and caches one token per session and audience (services re-check the user on
    every read). Keyed by the bridge's session key; ``forget`` drops all of a session's."""

    def __init__(self, cfg: TokensSection, key: Ed25519PrivateKey | KeyRing,
                 max_cached: int = 100_000):
        self._cfg = cfg
        self._ring = key if isinstance(key, KeyRing) else None
        self._key = key.key if isinstance(key, KeyRing) else key
        self._kid = key.kid if isinstance(key, KeyRing) else public_jwk(key)["kid"]
        if self._ring is not None:
            self._ring.on_switch.append(self._switched)
        self._refresh_at = max(cfg.ttl_s // 5, 10)
        self._cache: OrderedDict[str, tuple[bool, dict[str, tuple[str, int]]]] = OrderedDict()
        """sid -> (a guest?, audience -> (token, exp))"""
        self._max = max_cached

    def cached(self, sid: str, audience: str | None = None, guests: bool = False,
               now: float | None = None) -> str | None:
        """A cached token for ``sid`` and ``audience`` that is not about to expire;
        ``ANONYMOUS`` for a guest on a route that serves none; else None (ask the store)."""
        hit = self._cache.get(sid)
        if hit is None:
            return None
        guest, tokens = hit
        if guest and not guests:
            return ANONYMOUS
        found = tokens.get(audience or self._cfg.audience)
        if found is None or found[1] - (now or time.time()) <= self._refresh_at:
            return None
        return found[0]

    def mint(self, sid: str, identity: Identity, audience: str | None = None,
             now: float | None = None) -> str:
        aud = audience or self._cfg.audience
        issued = int(now or time.time())
        claims = session_claims(identity, issuer=self._cfg.issuer, audience=aud,
                                now=issued, ttl_s=self._cfg.ttl_s)
        token = jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self._kid})
        guest = identity.user_id is None
        hit = self._cache.get(sid)
        if hit is None or hit[0] != guest:
            hit = self._cache[sid] = (guest, {})
        hit[1][aud] = (token, claims["exp"])
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return token

    def note_guest(self, sid: str) -> None:
        """``sid`` has no user: routes that serve no guests need not ask the store."""
        hit = self._cache.get(sid)
        if hit is None or not hit[0]:
            self._cache[sid] = (True, {})
            if len(self._cache) > self._max:
                self._cache.popitem(last=False)

    def forget(self, sid: str) -> None:
        self._cache.pop(sid, None)

    def _switched(self) -> None:
        """A new key signs from now: tokens signed by the old one are minted afresh as
        sessions come by (the old public key stays published until they expire)."""
        assert self._ring is not None
        self._key, self._kid = self._ring.key, self._ring.kid
        self._cache.clear()


__all__ = ["ANONYMOUS", "SigningKeyError", "TokenMinter", "load_private_key"]
