"""gateway.session.tokens: identity tokens for new services, minted once per session and reused."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.claims import (
    ALGORITHMS,
    REQUIRED_CLAIMS,
    ClaimsError,
    Identity,
    identity_from_claims,
)
from gateway.session.signing import public_jwk
from gateway.session.tokens import ANONYMOUS, SigningKeyError, TokenMinter, load_private_key
from gateway.settings import TokensSection

CFG = TokensSection(issuer="gw-test", audience="shop-services", ttl_s=300)
SID = "S" * 43
ALICE = Identity(SID, "7", "alice")


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def minter(key: Ed25519PrivateKey) -> TokenMinter:
    return TokenMinter(CFG, key)


def verify(token: str, key: Ed25519PrivateKey) -> dict[str, object]:
    return jwt.decode(token, key.public_key(), algorithms=list(ALGORITHMS),
                      audience=CFG.audience, issuer=CFG.issuer,
                      options={"require": list(REQUIRED_CLAIMS)})


def test_minted_token_verifies_with_the_public_key(minter: TokenMinter,
                                                   key: Ed25519PrivateKey) -> None:
    now = int(time.time())
    token = minter.mint(SID, ALICE, now=now)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == public_jwk(key)["kid"], "the key's thumbprint names it"
    claims = verify(token, key)
    assert claims["iss"] == "gw-test"
    assert claims["aud"] == "shop-services"
    assert claims["sub"] == "7"
    assert claims["sid"] == SID
    assert claims["name"] == "alice"
    assert claims["iat"] == now
    assert claims["exp"] == now + 300
    assert identity_from_claims(claims) == ALICE


def test_token_does_not_verify_with_another_key(minter: TokenMinter) -> None:
    token = minter.mint(SID, ALICE, now=int(time.time()))
    with pytest.raises(jwt.InvalidSignatureError):
        verify(token, Ed25519PrivateKey.generate())


def test_cached_returns_the_same_token_until_shortly_before_expiry(minter: TokenMinter) -> None:
    issued = 1_700_000_000
    token = minter.mint(SID, ALICE, now=issued)
    exp = issued + CFG.ttl_s
    for t in (issued, issued + 1, issued + 60, issued + CFG.ttl_s // 2):
        assert minter.cached(SID, now=t) == token, t
    # never hand out a token a service might see expire in flight
    for t in (exp - 5, exp - 1, exp, exp + 100):
        assert minter.cached(SID, now=t) is None, t


def test_refresh_margin_is_a_small_part_of_the_lifetime(minter: TokenMinter) -> None:
    issued = 1_700_000_000
    minter.mint(SID, ALICE, now=issued)
    last_reuse = max(t for t in range(issued, issued + CFG.ttl_s + 1)
                     if minter.cached(SID, now=t) is not None)
    margin = issued + CFG.ttl_s - last_reuse
    assert 5 <= margin <= CFG.ttl_s // 2


def test_cache_is_per_session(minter: TokenMinter) -> None:
    issued = 1_700_000_000
    a = minter.mint(SID, ALICE, now=issued)
    b = minter.mint("T" * 43, Identity("T" * 43, "8", "bob"), now=issued)
    assert a != b
    assert minter.cached(SID, now=issued + 1) == a
    assert minter.cached("T" * 43, now=issued + 1) == b
    assert minter.cached("U" * 43, now=issued + 1) is None


def test_forget_drops_the_token(minter: TokenMinter) -> None:
    issued = 1_700_000_000
    minter.mint(SID, ALICE, now=issued)
    minter.forget(SID)
    assert minter.cached(SID, now=issued + 1) is None
    minter.forget(SID)  # forgetting twice is fine
    minter.forget("never-seen")


def test_remint_replaces_the_cached_token(minter: TokenMinter) -> None:
    first = minter.mint(SID, ALICE, now=1_700_000_000)
    second = minter.mint(SID, Identity(SID, "9", "carol"), now=1_700_000_100)
    assert first != second
    assert minter.cached(SID, now=1_700_000_101) == second


def test_cache_is_bounded(key: Ed25519PrivateKey) -> None:
    minter = TokenMinter(CFG, key, max_cached=3)
    now = 1_700_000_000
    sids = [c * 43 for c in "ABCD"]
    for i, sid in enumerate(sids):
        minter.mint(sid, Identity(sid, str(i), f"u{i}"), now=now)
    assert minter.cached(sids[0], now=now) is None  # oldest evicted
    assert all(minter.cached(s, now=now) for s in sids[1:])


# ---------------------------------------------------------------- signing key


def test_load_private_key_reads_an_ed25519_pem(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    loaded = load_private_key(path)
    assert loaded.public_key().public_bytes_raw() == key.public_key().public_bytes_raw()


def test_load_private_key_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match=r"tokens\.private_key_file"):
        load_private_key(tmp_path / "missing.pem")


def test_load_private_key_refuses_garbage(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_text("not a key")
    with pytest.raises(SigningKeyError, match=r"tokens\.private_key_file"):
        load_private_key(path)


def test_load_private_key_refuses_another_key_type(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(SigningKeyError, match="not an Ed25519 key"):
        load_private_key(path)


def test_one_token_per_service_and_a_token_for_one_is_refused_by_another(
        minter: TokenMinter, key: Ed25519PrivateKey) -> None:
    cart = minter.mint(SID, ALICE, "cart")
    orders = minter.mint(SID, ALICE, "orders")
    assert minter.cached(SID, "cart") == cart and minter.cached(SID, "orders") == orders
    assert minter.cached(SID, "catalog") is None, "minted per audience, never shared"
    jwt.decode(cart, key.public_key(), algorithms=list(ALGORITHMS), audience="cart",
               issuer=CFG.issuer)
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(cart, key.public_key(), algorithms=list(ALGORITHMS), audience="orders",
                   issuer=CFG.issuer)
    minter.forget(SID)
    assert minter.cached(SID, "cart") is None and minter.cached(SID, "orders") is None


def test_a_guest_token_names_the_session_and_no_user(minter: TokenMinter,
                                                     key: Ed25519PrivateKey) -> None:
    token = minter.mint(SID, Identity(SID, None), "prefs")
    claims = jwt.decode(token, key.public_key(), algorithms=list(ALGORITHMS),
                        audience="prefs", issuer=CFG.issuer,
                        options={"require": list(REQUIRED_CLAIMS)})
    assert "sub" not in claims and claims["guest"] is True and claims["sid"] == SID
    assert identity_from_claims(claims, guests=True).user_id is None
    with pytest.raises(ClaimsError):
        identity_from_claims(claims)  # a route that serves no guests refuses it
    assert minter.cached(SID, "prefs", guests=True) == token
    assert minter.cached(SID, "cart", guests=False) == ANONYMOUS, \
        "a known guest on a route for users: no token, no store read"


def test_a_guest_who_logs_in_gets_user_tokens(minter: TokenMinter) -> None:
    minter.note_guest(SID)
    assert minter.cached(SID, "cart") == ANONYMOUS
    token = minter.mint(SID, ALICE, "cart")
    assert minter.cached(SID, "cart") == token
