"""strangler_sdk.tokens: the gateway's identity token checked against its JWKS, the JWKS
served by a real HTTP server on loopback (refreshed on an unknown ``kid``, at most once a
second; a key no longer listed is dropped)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.claims import Identity, session_claims
from gateway.session.signing import public_jwk
from strangler_sdk.errors import InvalidToken, UnknownKey
from strangler_sdk.tokens import KeySet, TokenVerifier, load_jwks
from tests.support.keys import KeyPair, make_keypair

ISSUER, AUDIENCE = "strangler-gateway", "trips"
SID = "h" * 43


@dataclass
class JwksServer:
    """Serves ``keys`` at /jwks.json and counts the fetches."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.json_response({"keys": self.keys})


@pytest.fixture
async def jwks(keypair: KeyPair) -> AsyncIterator[JwksServer]:
    server = JwksServer([public_jwk(keypair.private_key)])
    app = web.Application()
    app.router.add_get("/jwks.json", server.handle)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    server.url = str(test_server.make_url("/jwks.json"))
    yield server
    await test_server.close()


def claims(**changes: Any) -> dict[str, Any]:
    base = session_claims(Identity(SID, "u-1", "Ann Lee", {"username": "ann"}), issuer=ISSUER,
                          audience=AUDIENCE, now=int(time.time()), ttl_s=300)
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(keypair: KeyPair, payload: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(payload, keypair.private_key, algorithm="EdDSA",
                      headers={"kid": keypair.kid, **headers})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def verifier_for(keypair: KeyPair) -> TokenVerifier:
    return TokenVerifier(load_jwks(keypair.jwks), issuer=ISSUER)


def test_a_good_token_names_its_user_session_name_and_claims(keypair: KeyPair) -> None:
    who = verifier_for(keypair).verify(sign(keypair, claims()), AUDIENCE)
    assert (who.user_id, who.session_id, who.name) == ("u-1", SID, "Ann Lee")
    assert who.claims == {"username": "ann"}


def test_hs256_signed_with_the_public_key_is_refused(keypair: KeyPair) -> None:
    """The classic confusion attack: the public key used as an HMAC secret."""
    raw = json.loads(keypair.jwks.read_text())["keys"][0]["x"].encode()
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": keypair.kid}).encode())
    unsigned = f"{header}.{b64(json.dumps(claims()).encode())}"
    token = f"{unsigned}.{b64(hmac.new(raw, unsigned.encode(), hashlib.sha256).digest())}"
    with pytest.raises(InvalidToken):
        verifier_for(keypair).verify(token, AUDIENCE)


def test_alg_none_is_refused(keypair: KeyPair) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": keypair.kid}).encode())
    with pytest.raises(InvalidToken):
        verifier_for(keypair).verify(f"{header}.{b64(json.dumps(claims()).encode())}.",
                                     AUDIENCE)


@pytest.mark.parametrize("change", [  # times from the test's own clock, not collection's
    lambda now: {"aud": "orders"}, lambda now: {"iss": "evil"},
    lambda now: {"exp": now - 30}, lambda now: {"nbf": now + 60},
    lambda now: {"sid": None}, lambda now: {"iat": None}],
    ids=["aud", "iss", "expired", "not-yet", "no-sid", "no-iat"])
def test_wrong_audience_issuer_times_and_missing_claims_are_refused(
        keypair: KeyPair, change: Callable[[int], dict[str, Any]]) -> None:
    with pytest.raises(InvalidToken):
        verifier_for(keypair).verify(sign(keypair, claims(**change(int(time.time())))),
                                     AUDIENCE)


def test_a_few_seconds_of_clock_skew_are_allowed(keypair: KeyPair) -> None:
    now = int(time.time())
    token = sign(keypair, claims(exp=now - 2, nbf=now + 2))
    assert verifier_for(keypair).verify(token, AUDIENCE).user_id == "u-1"


def test_a_guest_token_only_where_guests_are_served(keypair: KeyPair) -> None:
    guest = session_claims(Identity(SID, None), issuer=ISSUER, audience=AUDIENCE,
                           now=int(time.time()), ttl_s=300)
    verifier = verifier_for(keypair)
    token = sign(keypair, guest)
    with pytest.raises(InvalidToken):
        verifier.verify(token, AUDIENCE)
    assert verifier.verify(token, AUDIENCE, guests=True).user_id is None
    with pytest.raises(InvalidToken):  # the cached entry keeps the rule too
        verifier.verify(token, AUDIENCE)


async def test_an_unknown_kid_fetches_the_jwks_and_then_verifies(
        jwks: JwksServer, keypair: KeyPair, tmp_path: Path) -> None:
    rotated = make_keypair(tmp_path / "rotated")
    clock = [1000.0]
    verifier = TokenVerifier(KeySet(load_jwks(keypair.jwks), jwks.url, clock=lambda: clock[0]),
                             issuer=ISSUER)
    token = sign(rotated, claims())
    with pytest.raises(UnknownKey):  # not published yet: fetched, still unknown
        await verifier.identify(token, AUDIENCE)
    assert jwks.hits == 1
    jwks.keys.append(public_jwk(rotated.private_key))
    clock[0] += 1.0  # the rate limit's interval
    assert (await verifier.identify(token, AUDIENCE)).user_id == "u-1"
    assert jwks.hits == 2


async def test_forged_kids_fetch_at_most_once_a_second(jwks: JwksServer,
                                                       keypair: KeyPair) -> None:
    clock = [1000.0]
    keys = KeySet(load_jwks(keypair.jwks), jwks.url, clock=lambda: clock[0])
    verifier = TokenVerifier(keys, issuer=ISSUER)
    for i in range(20):
        with pytest.raises(UnknownKey):
            await verifier.identify(sign(keypair, claims(), kid=f"forged-{i}"), AUDIENCE)
    assert jwks.hits == 1, "twenty unknown kids within a second: one fetch"
    clock[0] += 1.0
    with pytest.raises(UnknownKey):
        await verifier.identify(sign(keypair, claims(), kid="forged-x"), AUDIENCE)
    assert jwks.hits == 2


async def test_a_key_no_longer_listed_is_dropped(jwks: JwksServer, keypair: KeyPair) -> None:
    keys = KeySet(load_jwks(keypair.jwks), jwks.url, min_interval_s=0)
    verifier = TokenVerifier(keys, issuer=ISSUER, cache_size=0)
    token = sign(keypair, claims())
    assert verifier.verify(token, AUDIENCE).user_id == "u-1"
    jwks.keys.clear()
    jwks.keys.append(public_jwk(make_keypair(Path(str(keypair.jwks.parent / "n"))).private_key))
    assert await keys.refresh()
    assert keypair.kid not in keys.kids
    with pytest.raises(InvalidToken):
        verifier.verify(token, AUDIENCE)


async def test_a_failed_fetch_keeps_the_keys_held(keypair: KeyPair) -> None:
    keys = KeySet(load_jwks(keypair.jwks), "http://127.0.0.1:9/jwks.json", min_interval_s=0)
    assert not await keys.refresh()
    assert keys.kids == {keypair.kid}
