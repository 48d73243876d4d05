"""strangler_sdk.aiohttp: the answers a small real app gets from the SDK's middlewares
(token -> identity or 401, shadow copies refused, errors as JSON)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError

from adapters.claims import Identity, session_claims
from adapters.wire import IDENTITY_HEADER, SHADOW_HEADER
from strangler_sdk.aiohttp import SDK, caller, middlewares
from strangler_sdk.errors import BadRequest, SessionBusy
from strangler_sdk.tokens import TokenVerifier, load_jwks
from tests.support.keys import KeyPair
from tests.support.sdk import with_verifier

Client = TestClient[Any, Any]


async def whoami(request: web.Request) -> web.Response:
    who = caller(request).identity
    return web.json_response({"user": who.user_id if who else None})


async def busy(request: web.Request) -> web.Response:
    raise SessionBusy()


async def redis_down(request: web.Request) -> web.Response:
    raise RedisConnectionError("refused")


async def own_text(request: web.Request) -> web.Response:
    raise BadRequest("the pref key is wrong")


async def default_text(request: web.Request) -> web.Response:
    raise BadRequest()


async def crash(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


async def write(request: web.Request) -> web.Response:
    return web.json_response({"written": True})


@pytest.fixture
async def client(aiohttp_client: Any, keypair: KeyPair) -> Client:
    app = web.Application(middlewares=middlewares("trips", details={"bad_request": "nope"}))
    app[SDK] = with_verifier(TokenVerifier(load_jwks(keypair.jwks), issuer="strangler-gateway"))
    for path, handler in (("/whoami", whoami), ("/busy", busy), ("/redis", redis_down),
                          ("/own", own_text), ("/default", default_text), ("/crash", crash)):
        app.router.add_get(path, handler)
    app.router.add_post("/write", write)
    made: Client = await aiohttp_client(app)
    return made


def token(keypair: KeyPair, audience: str = "trips") -> str:
    payload = session_claims(Identity("h" * 43, "u-1"), issuer="strangler-gateway",
                             audience=audience, now=int(time.time()), ttl_s=300)
    return jwt.encode(payload, keypair.private_key, algorithm="EdDSA",
                      headers={"kid": keypair.kid})


async def get(client: Client, path: str, **headers: str) -> tuple[int, Any, Any]:
    async with client.get(path, headers=headers) as r:
        return r.status, await r.json(), r.headers


async def test_a_verified_token_is_the_callers_identity(client: Client,
                                                        keypair: KeyPair) -> None:
    status, body, _ = await get(client, "/whoami", **{IDENTITY_HEADER: token(keypair)})
    assert (status, body) == (200, {"user": "u-1"})


async def test_no_token_is_anonymous(client: Client) -> None:
    assert (await get(client, "/whoami"))[:2] == (200, {"user": None})


@pytest.mark.parametrize("bad", ["garbage", "a.b.c"])
async def test_a_bad_token_is_401_never_anonymous(client: Client, bad: str) -> None:
    status, body, _ = await get(client, "/whoami", **{IDENTITY_HEADER: bad})
    assert status == 401 and body["error"] == "not_logged_in"


async def test_a_token_for_another_service_is_401(client: Client, keypair: KeyPair) -> None:
    status, _, _ = await get(client, "/whoami", **{IDENTITY_HEADER: token(keypair, "orders")})
    assert status == 401


async def test_a_shadow_copy_may_not_write(client: Client) -> None:
    async with client.post("/write", headers={SHADOW_HEADER: "1"}) as r:
        assert r.status == 409 and (await r.json())["error"] == "shadow_write_refused"
    async with client.post("/write") as r:
        assert r.status == 200


async def test_sdk_and_store_errors_become_json(client: Client) -> None:
    status, body, headers = await get(client, "/busy")
    assert (status, body["error"], headers["Retry-After"]) == (503, "session_busy", "1")
    status, body, headers = await get(client, "/redis")
    assert (status, body["error"], headers["Retry-After"]) == (503, "unavailable", "1")
    status, body, _ = await get(client, "/crash")
    assert (status, body["error"]) == (500, "internal_error")
    status, body, _ = await get(client, "/nowhere")
    assert (status, body["error"]) == (404, "not_found")


async def test_details_replace_default_texts_only(client: Client) -> None:
    assert (await get(client, "/default"))[1] == {"error": "bad_request", "detail": "nope"}
    assert (await get(client, "/own"))[1] == {"error": "bad_request",
                                              "detail": "the pref key is wrong"}
