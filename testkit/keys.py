"""Signing keys for tests, made the same way ``strangler keys`` makes them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.session.signing import public_jwk


@dataclass(frozen=True)
class KeyPair:
    kid: str
    private_pem: Path
    jwks: Path
    private_key: Ed25519PrivateKey


def make_keypair(directory: Path, kid: str | None = None) -> KeyPair:
    """A key pair and its JWKS; ``kid`` defaults to the key's thumbprint, the name the
    gateway gives it (``gateway.session.signing.public_jwk``)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = directory / "jwt-private.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    pem.chmod(0o600)
    jwk = public_jwk(key)
    if kid is not None:
        jwk["kid"] = kid
    kid = jwk["kid"]
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    return KeyPair(kid, pem, jwks, key)


SESSION_KEY = b"strangler-tests-session-key-0123456789abcdef"
"""The session key (``tokens.session_key``) tests run with: handles are derived from it."""
