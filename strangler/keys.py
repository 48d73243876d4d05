"""Secrets for a local stack: the JWT signing key pair and shared tokens.

Made on first use with mode 0600 and never committed (``.strangler/`` is
ignored). Production deployments mount their own.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.session.signing import public_jwk


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_keypair(private_pem: Path, jwks: Path) -> bool:
    """Create an Ed25519 key and its JWKS (``kid``: the key's thumbprint, as the gateway
    names it) if missing. True if created."""
    if private_pem.exists() and jwks.exists():
        return False
    key = Ed25519PrivateKey.generate()
    _write_private(private_pem, key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    jwk = public_jwk(key)
    jwks.parent.mkdir(parents=True, exist_ok=True)
    jwks.write_text(json.dumps({"keys": [jwk]}, indent=2))
    return True


def ensure_token(path: Path) -> str:
    """Read a token file, creating it with a random token if missing."""
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    _write_private(path, token.encode())
    return token
