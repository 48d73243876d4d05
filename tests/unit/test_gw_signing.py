"""gateway.session.signing: the key rotates by replacing its file, with no restart and no token
refused on the way."""

from __future__ import annotations

from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.session.signing import KeyRing, public_jwk


def write_key(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key


def kids(ring: KeyRing) -> list[str]:
    return [k["kid"] for k in ring.jwks()["keys"]]


def test_the_kid_is_the_key_s_thumbprint_and_the_jwks_is_a_real_one(tmp_path: Path) -> None:
    key = write_key(tmp_path / "k.pem")
    ring = KeyRing(tmp_path / "k.pem", ttl_s=300)
    assert ring.kid == public_jwk(key)["kid"] and len(ring.kid) == 16
    token = jwt.encode({"a": 1}, ring.key, algorithm="EdDSA", headers={"kid": ring.kid})
    jwks = jwt.PyJWKSet.from_dict(ring.jwks())
    assert jwt.decode(token, jwks[ring.kid].key, algorithms=["EdDSA"]) == {"a": 1}


def test_a_new_key_is_published_first_then_signs_and_the_old_one_stays_till_its_tokens_die(
        tmp_path: Path) -> None:
    now = [1000.0]
    path = tmp_path / "k.pem"
    write_key(path)
    ring = KeyRing(path, ttl_s=300, publish_ahead_s=10, clock=lambda: now[0])
    switched: list[str] = []
    ring.on_switch.append(lambda: switched.append(ring.kid))
    old = ring.kid
    new = public_jwk(write_key(path))["kid"]
    ring.tick()
    assert ring.kid == old and kids(ring) == [old, new], "published, not signing yet"
    now[0] += 9
    ring.tick()
    assert ring.kid == old
    now[0] += 2
    ring.tick()
    assert ring.kid == new and switched == [new] and kids(ring) == [new, old]
    now[0] += 300 + 59
    ring.tick()
    assert old in kids(ring), "a token signed just before the switch may still be alive"
    now[0] += 2
    ring.tick()
    assert kids(ring) == [new]


def test_a_broken_key_file_keeps_the_running_key(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    write_key(path)
    ring = KeyRing(path, ttl_s=300, publish_ahead_s=0)
    old = ring.kid
    path.write_text("not a key")
    ring.tick()
    assert ring.kid == old and kids(ring) == [old]
    path.unlink()
    ring.tick()
    assert ring.kid == old
