"""Identity tokens toward new services: every attack is a 401 ``not_logged_in``.

Each test sends a token to a small real app that only verifies identity
(``new_services.identity.token_identity`` behind the service's middlewares, on the SDK),
so what is asserted is the HTTP answer a forged request would get.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.claims import Identity, session_claims
from adapters.contracts import error_for
from adapters.wire import IDENTITY_HEADER
from new_services.identity import token_identity
from new_services.middleware import MIDDLEWARES
from strangler_sdk.aiohttp import SDK
from strangler_sdk.errors import InvalidToken
from strangler_sdk.tokens import TokenCache, TokenVerifier, load_jwks
from tests.support.keys import KeyPair, make_keypair
from tests.support.sdk import with_verifier

ISSUER, AUDIENCE = "strangler-gateway", "cart"  # a service checks aud = its own name
SID = "s" * 43
Client = TestClient[Any, Any]


def claims(**changes: Any) -> dict[str, Any]:
    base = session_claims(Identity(SID, "7", "alice"), issuer=ISSUER, audience=AUDIENCE,
                          now=int(time.time()), ttl_s=300)
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(keypair: KeyPair, payload: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(payload, keypair.private_key, algorithm="EdDSA",
                      headers={"kid": keypair.kid, **headers})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A token built by hand, as an attacker would (PyJWT refuses to make these)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(signature)}"


def hs256_with(secret: bytes, kid: str) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    unsigned = handmade(header, claims()).rsplit(".", 1)[0]
    mac = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64(mac)}"


def public_raw(keypair: KeyPair) -> bytes:
    return keypair.private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                         serialization.PublicFormat.Raw)


def public_pem(keypair: KeyPair) -> bytes:
    return keypair.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


async def whoami(request: web.Request) -> web.Response:
    identity = await token_identity(request, AUDIENCE)
    if identity is None:
        return web.json_response({"anonymous": True})
    return web.json_response({"sid": identity.session_id, "user_id": identity.user_id,
                              "name": identity.name})


@pytest.fixture
async def client(aiohttp_client: Any, keypair: KeyPair) -> Client:
    app = web.Application(middlewares=MIDDLEWARES)
    app[SDK] = with_verifier(TokenVerifier(load_jwks(keypair.jwks), issuer=ISSUER))
    app.router.add_get("/whoami", whoami)
    return await aiohttp_client(app)


async def ask(client: Client, token: str | None) -> tuple[int, Any]:
    headers = {} if token is None else {IDENTITY_HEADER: token}
    async with client.get("/whoami", headers=headers) as resp:
        return resp.status, await resp.json()


async def assert_401(client: Client, token: str) -> None:
    assert await ask(client, token) == error_for("not_logged_in")


# ---------------------------------------------------------------- accepted
async def test_a_gateway_token_is_accepted(client: Client, keypair: KeyPair) -> None:
    assert await ask(client, sign(keypair, claims())) == (
        200, {"sid": SID, "user_id": "7", "name": "alice"})


async def test_no_header_is_anonymous(client: Client) -> None:
    assert await ask(client, None) == (200, {"anonymous": True})


async def test_a_cached_token_answers_the_same(client: Client, keypair: KeyPair) -> None:
    token = sign(keypair, claims())
    assert await ask(client, token) == await ask(client, token)


# ---------------------------------------------------------------- rejected
async def test_alg_none_is_401(client: Client, keypair: KeyPair) -> None:
    await assert_401(client, handmade({"alg": "none", "typ": "JWT", "kid": keypair.kid},
                                      claims()))


async def test_hs256_signed_with_the_raw_public_key_is_401(client: Client,
                                                           keypair: KeyPair) -> None:
    await assert_401(client, hs256_with(public_raw(keypair), keypair.kid))


async def test_hs256_signed_with_the_public_key_pem_is_401(client: Client,
                                                           keypair: KeyPair) -> None:
    await assert_401(client, hs256_with(public_pem(keypair), keypair.kid))


async def test_hs256_signed_with_the_jwks_x_value_is_401(client: Client,
                                                         keypair: KeyPair) -> None:
    x = json.loads(keypair.jwks.read_text())["keys"][0]["x"]
    await assert_401(client, hs256_with(x.encode(), keypair.kid))


async def test_expired_token_is_401(client: Client, keypair: KeyPair) -> None:
    now = int(time.time())
    await assert_401(client, sign(keypair, claims(iat=now - 600, nbf=now - 600, exp=now - 60)))


async def test_token_without_exp_is_401(client: Client, keypair: KeyPair) -> None:
    payload = claims()
    del payload["exp"]
    await assert_401(client, sign(keypair, payload))


@pytest.mark.parametrize("claim", ["iat", "iss", "aud", "sub", "sid"])
async def test_token_missing_a_required_claim_is_401(client: Client, keypair: KeyPair,
                                                     claim: str) -> None:
    payload = claims()
    del payload[claim]
    await assert_401(client, sign(keypair, payload))


async def test_wrong_audience_is_401(client: Client, keypair: KeyPair) -> None:
    await assert_401(client, sign(keypair, claims(aud="someone-else")))


async def test_wrong_issuer_is_401(client: Client, keypair: KeyPair) -> None:
    await assert_401(client, sign(keypair, claims(iss="evil-gateway")))


async def test_not_yet_valid_token_is_401(client: Client, keypair: KeyPair) -> None:
    await assert_401(client, sign(keypair, claims(nbf=int(time.time()) + 3600)))


async def test_unknown_kid_is_401(client: Client, keypair: KeyPair) -> None:
    await assert_401(client, sign(keypair, claims(), kid="test-2"))


async def test_missing_kid_is_401(client: Client, keypair: KeyPair) -> None:
    token = jwt.encode(claims(), keypair.private_key, algorithm="EdDSA")
    await assert_401(client, token)


@pytest.mark.parametrize("kid", ["../keys/jwks.json", "/etc/passwd", "..\\test-1",
                                 "test-1/../test-1", "test-1\x00"])
async def test_path_like_kid_is_401(client: Client, keypair: KeyPair, kid: str) -> None:
    await assert_401(client, sign(keypair, claims(), kid=kid))


@pytest.mark.parametrize("kid", [1, None, ["test-1"], {"id": "test-1"}])
async def test_non_string_kid_is_401(client: Client, keypair: KeyPair, kid: Any) -> None:
    header = {"alg": "EdDSA", "typ": "JWT", "kid": kid}
    unsigned = handmade(header, claims()).rsplit(".", 1)[0]
    signature = keypair.private_key.sign(unsigned.encode())
    await assert_401(client, f"{unsigned}.{b64(signature)}")


async def test_signature_of_another_key_is_401(client: Client, keypair: KeyPair,
                                               tmp_path: Path) -> None:
    other = make_keypair(tmp_path / "other", kid=keypair.kid)
    await assert_401(client, sign(other, claims()))


async def test_tampered_payload_is_401(client: Client, keypair: KeyPair) -> None:
    header, _payload, signature = sign(keypair, claims()).split(".")
    forged = b64(json.dumps(claims(sub="1")).encode())
    await assert_401(client, f"{header}.{forged}.{signature}")


@pytest.mark.parametrize("sub", ["alice", "-1", "", "7.0", "07", "\u0667", "1" * 40, 7])
async def test_sub_that_is_not_a_user_id_of_the_shop_is_401(client: Client, keypair: KeyPair,
                                                            sub: Any) -> None:
    await assert_401(client, sign(keypair, claims(sub=sub)))


async def test_a_token_without_a_name_still_names_its_user(client: Client,
                                                           keypair: KeyPair) -> None:
    """The shop shows the name its session holds; the token's is only a courtesy."""
    payload = claims()
    del payload["name"]
    assert await ask(client, sign(keypair, payload)) == (
        200, {"sid": SID, "user_id": "7", "name": None})


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "..", "x" * 5000,
                                   "Bearer abc.def.ghi"])
async def test_malformed_tokens_are_401(client: Client, token: str) -> None:
    await assert_401(client, token)


def test_cache_serves_a_verified_token_until_its_exp_and_not_after(keypair: KeyPair) -> None:
    clock = [time.time()]
    keys = load_jwks(keypair.jwks)
    verifier = TokenVerifier(keys, issuer=ISSUER, clock=lambda: clock[0])
    token = sign(keypair, claims())
    assert verifier.verify(token, AUDIENCE).user_id == "7"
    keys.clear()  # from now on only the cache can vouch for the token
    clock[0] += 299
    assert verifier.verify(token, AUDIENCE).session_id == SID
    clock[0] += 2  # past exp: the cached entry is dropped and verification runs again
    with pytest.raises(InvalidToken):
        verifier.verify(token, AUDIENCE)


# ---------------------------------------------------------------- cache and key set
def test_cache_entries_expire_at_exp() -> None:
    cache = TokenCache(10)
    who = Identity(SID, "1", "a")
    cache.put("t", who, AUDIENCE, exp=100.0)
    hit = cache.get("t", now=99.9)
    assert hit is not None and hit.identity == who
    assert cache.get("t", now=100.0) is None
    assert len(cache) == 0


def test_cache_is_bounded_and_keeps_the_recently_used() -> None:
    cache = TokenCache(2)
    who = Identity(SID, "1", "a")
    cache.put("a", who, AUDIENCE, 1e12)
    cache.put("b", who, AUDIENCE, 1e12)
    assert cache.get("a", 0) is not None
    cache.put("c", who, AUDIENCE, 1e12)
    assert len(cache) == 2
    assert cache.get("b", 0) is None and cache.get("a", 0) is not None


def test_a_zero_sized_cache_caches_nothing() -> None:
    cache = TokenCache(0)
    cache.put("a", Identity(SID, "1", "a"), AUDIENCE, 1e12)
    assert cache.get("a", 0) is None


def test_jwks_keeps_only_ed25519_keys(tmp_path: Path) -> None:
    ed = jwt.algorithms.OKPAlgorithm.to_jwk(Ed25519PrivateKey.generate().public_key(),
                                            as_dict=True)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [
        {**ed, "kid": "ed"},
        {"kty": "oct", "k": b64(b"secret"), "kid": "hmac", "alg": "HS256"},
        {**ed},  # no kid: cannot be selected, so not kept
    ]}))
    assert set(load_jwks(path)) == {"ed"}


def test_a_jwks_without_usable_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": b64(b"s"), "kid": "h"}]}))
    with pytest.raises(ValueError, match="no Ed25519 key"):
        load_jwks(path)
