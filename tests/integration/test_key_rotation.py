"""Key rotation with no restart: the gateway publishes a new key, signs with it a little
later, and a running new service verifies tokens signed by either -- the old key's until
they expire -- by fetching the gateway's /.well-known/jwks.json when it meets a new kid."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.claims import Identity
from adapters.wire import IDENTITY_HEADER
from gateway.session.signing import public_jwk
from new_services.identity import token_identity
from new_services.middleware import MIDDLEWARES
from strangler_sdk.aiohttp import SDK
from strangler_sdk.tokens import KeySet, TokenVerifier, load_jwks
from tests.support.harness import GatewayHarness
from tests.support.keys import KeyPair
from tests.support.net import await_until
from tests.support.sdk import with_verifier


def replace_key(path: Path) -> str:
    key = Ed25519PrivateKey.generate()
    tmp = path.with_suffix(".new")
    tmp.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    tmp.replace(path)  # as a secret mount swaps it: atomically
    return public_jwk(key)["kid"]


async def whoami(request: web.Request) -> web.Response:
    identity = await token_identity(request, "cart")
    return web.json_response({"sub": identity.user_id if identity else None})


@pytest.fixture
async def gateway(redis_url: str, key_prefix: str,
                  keypair: KeyPair) -> AsyncIterator[GatewayHarness]:
    harness = GatewayHarness(redis_url, key_prefix, keypair, legacy={"a": "http://127.0.0.1:9"})
    harness.extra = {"tokens": {"private_key_file": str(keypair.private_pem),
                                "session_key": {"env": "STRANGLER_TEST_SESSION_KEY"},
                                "publish_ahead_s": 0.5, "key_check_s": 0.05}}
    await harness.start()
    yield harness
    await harness.stop()


async def test_a_rotated_key_is_used_without_a_restart_on_either_side(
        gateway: GatewayHarness, keypair: KeyPair) -> None:
    assert gateway.instance is not None
    minter = gateway.instance.bridge.minter
    jwks_url = f"{gateway.admin_url}/.well-known/jwks.json"
    # a new service that started with the JWKS file and knows the gateway's URL
    app = web.Application(middlewares=MIDDLEWARES)
    app[SDK] = with_verifier(TokenVerifier(
        KeySet(load_jwks(keypair.jwks), jwks_url, min_interval_s=0), issuer="strangler-gateway"))
    http = aiohttp.ClientSession()
    app.router.add_get("/whoami", whoami)
    service = TestServer(app, host="127.0.0.1")
    await service.start_server()
    try:
        async def ask(token: str) -> tuple[int, Any]:
            async with http.get(service.make_url("/whoami"),
                                headers={IDENTITY_HEADER: token}) as r:
                return r.status, await r.json()

        old_token = minter.mint("s1", Identity("h1", "7"), "cart")
        assert await ask(old_token) == (200, {"sub": "7"})
        new_kid = replace_key(keypair.private_pem)

        async def published() -> bool:
            async with http.get(jwks_url) as r:
                return new_kid in [k["kid"] for k in (await r.json())["keys"]]
        await await_until(published, timeout=5, what="the new key published")

        def signs_new() -> bool:
            token = minter.mint("s3", Identity("h3", "9"), "cart")
            return bool(jwt.get_unverified_header(token)["kid"] == new_kid)
        deadline = time.monotonic() + 5
        while not signs_new():
            assert time.monotonic() < deadline, "the gateway never switched to the new key"
            await asyncio.sleep(0.05)
        new_token = minter.mint("s4", Identity("h4", "10"), "cart")
        assert await ask(new_token) == (200, {"sub": "10"}), "fetched the new key by itself"
        assert await ask(old_token) == (200, {"sub": "7"}), "the old key lives until its tokens"
        other = minter.mint("s4", Identity("h4", "10"), "orders")
        assert (await ask(other))[0] == 401, "a token for another service is refused"
    finally:
        await service.close()
        await http.close()
