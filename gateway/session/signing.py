"""The token signing key, its rotation, and the public key set services fetch.

The key lives in ``tokens.private_key_file`` (Ed25519, PEM). Each key's ``kid`` is
its RFC 7638 thumbprint (cut to 16 characters), so every gateway names the
same key the same way with nothing to configure. Rotation needs no restart:

1. an operator replaces the key file (every gateway reads the same file);
2. each gateway notices within ``check_s`` and *publishes* the new public key at
   ``/.well-known/jwks.json`` at once, but keeps signing with the old one for
   ``publish_ahead_s``, so services that refresh on an unknown ``kid`` find it
   whichever gateway they ask;
3. then it signs with the new key; the old public key stays published until
   every token it signed has expired (``ttl_s`` and a margin), then goes.

A key file that cannot be read or is not Ed25519 is reported and ignored: the
running key stays (``SigningKeyError`` only at start).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.observe import log

_log = log.get("signing")


class SigningKeyError(Exception):
    """The signing key file is missing or not an Ed25519 private key."""


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise SigningKeyError(f"tokens.private_key_file: cannot load {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"tokens.private_key_file: {path} is not an Ed25519 key")
    return key


def public_jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    """The public half as a JWK, with its thumbprint ``kid``."""
    jwk: dict[str, str] = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    canonical = json.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]},
                           separators=(",", ":"), sort_keys=True)
    thumb = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
    return {**jwk, "kid": thumb.decode().rstrip("=")[:16], "alg": "EdDSA", "use": "sig"}


@dataclass(frozen=True, slots=True)
class _Published:
    key: Ed25519PrivateKey
    jwk: dict[str, str]
    until: float
    """Wall-clock time after which it is no longer published (inf: in use)."""


class KeyRing:
    """The key that signs now, the one about to, and those whose tokens may still live."""

    def __init__(self, path: Path, *, ttl_s: int, publish_ahead_s: float = 10.0,
                 check_s: float = 2.0, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._ttl = ttl_s
        self._ahead = publish_ahead_s
        self.check_s = check_s
        self._clock = clock
        self._stamp = self._file_stamp()
        key = load_private_key(path)
        self._current = _Published(key, public_jwk(key), float("inf"))
        self._next: tuple[_Published, float] | None = None
        """A key published, and the time it starts signing."""
        self._retired: list[_Published] = []
        self.on_switch: list[Callable[[], None]] = []
        """Called when a new key starts signing (the token cache must be dropped)."""

    @property
    def kid(self) -> str:
        return self._current.jwk["kid"]

    @property
    def key(self) -> Ed25519PrivateKey:
        return self._current.key

    def jwks(self) -> dict[str, Any]:
        """Every public key a valid token may name, signing key first."""
        now = self._clock()
        keys = [self._current.jwk]
        if self._next is not None:
            keys.append(self._next[0].jwk)
        keys += [p.jwk for p in self._retired if p.until > now]
        return {"keys": keys}

    def tick(self) -> None:
        """Look at the file and the clock: publish a new key, switch to it, retire old ones."""
        now = self._clock()
        self._retired = [p for p in self._retired if p.until > now]
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            self._read_new(now)
        if self._next is not None and now >= self._next[1]:
            published, _ = self._next
            self._retired.append(_Published(self._current.key, self._current.jwk,
                                            now + self._ttl + 60))
            self._current, self._next = published, None
            _log.info("signing_key_switched", kid=self.kid)
            for callback in self.on_switch:
                callback()

    def _read_new(self, now: float) -> None:
        try:
            key = load_private_key(self._path)
        except SigningKeyError as exc:
            _log.error("signing_key_unreadable", reason=str(exc), kept=self.kid)
            return
        jwk = public_jwk(key)
        if jwk["kid"] == self.kid:
            return
        self._next = (_Published(key, jwk, float("inf")), now + self._ahead)
        _log.info("signing_key_published", kid=jwk["kid"], signs_in_s=self._ahead)

    def _file_stamp(self) -> bytes | None:
        """The file's digest: a key file is small, and a timestamp can miss a quick swap."""
        try:
            return hashlib.sha256(self._path.read_bytes()).digest()
        except OSError:
            return None
