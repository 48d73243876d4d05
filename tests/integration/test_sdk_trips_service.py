"""The Django example's new service as a real process: a session written into Redis as
the gateway writes one after a sync, a token minted as the gateway mints it, and the
contract's answers -- with every write visible in the shared record, in the shape the
profile gives back to Django."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.claims import Identity, session_claims
from adapters.document import Document
from adapters.store import WRITE_SCRIPT, session_key, write_args
from adapters.wire import IDENTITY_HEADER, SHADOW_HEADER
from examples.django_trips.new_service.db import METADATA, destinations
from gateway.session.signing import public_jwk
from strangler_sdk.config import load_profile
from tests.support.keys import KeyPair, make_keypair
from tests.support.net import await_until, free_port
from tests.support.procs import Proc, python_module

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "django_trips" / "config.yaml"
TRIPS = load_profile(CONFIG)
UID = "7d0c7a7e-0000-4000-8000-000000000001"
DJANGO_SESSION = {  # what Django's session holds after the login view and some clicks
    "_auth_user_id": UID, "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": "3f1c", "username": "ann", "display_name": "Ann Lee",
    "saved": ["rome"], "views": {"rome": 2}, "recent": ["rome"],
}
SEED = [("lima", "Lima", "Peru", 89900), ("oslo", "Oslo", "Norway", 129900),
        ("rome", "Rome", "Italy", 99950)]


@dataclass
class World:
    url: str
    redis: aioredis.Redis
    prefix: str
    keypair: KeyPair
    http: aiohttp.ClientSession

    def token(self, handle: str, user: str | None = UID, audience: str = "trips") -> str:
        claims = session_claims(Identity(handle, user, "Ann Lee", {"username": "ann"}),
                                issuer="strangler-gateway", audience=audience,
                                now=int(time.time()), ttl_s=300)
        return jwt.encode(claims, self.keypair.private_key, algorithm="EdDSA",
                          headers={"kid": self.keypair.kid})

    async def session(self, handle: str, data: dict[str, Any]) -> str:
        """The record the gateway writes after pulling ``data`` from a Django node; the
        token it would send with it."""
        doc = TRIPS.from_export(data).to_json()
        script = self.redis.register_script(WRITE_SCRIPT)
        done = await script(keys=[session_key(self.prefix, handle)], args=write_args(
            0, 86400, bump=True, set_lv=True,
            fields={"doc": doc, "base": doc, "node": "a@1", "lrev": 3, "t": int(time.time())}))
        assert int(done[0]) == 1, "setup: the record was written"
        return self.token(handle)

    async def django_sees(self, handle: str) -> dict[str, Any]:
        """What the gateway would import into a Django node now."""
        raw = await self.redis.hget(session_key(self.prefix, handle), "doc")
        assert raw is not None, "the record exists"
        return TRIPS.to_import(Document.from_json(raw))

    async def call(self, method: str, path: str, token: str | None = None,
                   body: Any = None, **headers: str) -> tuple[int, Any]:
        if token is not None:
            headers[IDENTITY_HEADER] = token
        data = None if body is None else json.dumps(body)
        async with self.http.request(method, self.url + path, data=data,
                                     headers=headers) as r:
            return r.status, await r.json()


@pytest.fixture
async def database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'trips.db'}"
    engine = create_async_engine(url)
    async with engine.begin() as conn:  # Django's migration, as far as the service reads
        await conn.run_sync(METADATA.create_all)
        await conn.execute(insert(destinations), [
            {"slug": s, "name": n, "country": c, "price_cents": p} for s, n, c, p in SEED])
    await engine.dispose()
    return url


@pytest.fixture
def service(tmp_path: Path, database: str, redis_url: str, key_prefix: str,
            keypair: KeyPair) -> Iterator[str]:
    port = free_port()
    proc = Proc("trips-new", python_module(
        "examples.django_trips.new_service", "--port", str(port), "--instance-id", "t9",
        "--config", str(CONFIG), "--database-url", database, "--redis-url", redis_url,
        "--key-prefix", key_prefix, "--jwks-file", str(keypair.jwks)),
        tmp_path, ready_url=f"http://127.0.0.1:{port}/healthz")
    proc.start()
    yield f"http://127.0.0.1:{port}"
    proc.stop()


@pytest.fixture
async def world(service: str, redis_client: aioredis.Redis, key_prefix: str,
                keypair: KeyPair) -> AsyncIterator[World]:
    async with aiohttp.ClientSession() as http:
        yield World(service, redis_client, key_prefix, keypair, http)


H1, H2 = "a" * 43, "b" * 43


async def test_the_token_and_record_give_the_users_state(world: World) -> None:
    token = await world.session(H1, DJANGO_SESSION)
    user = {"id": UID, "username": "ann", "name": "Ann Lee"}
    assert await world.call("GET", "/api/me", token) == (200, {"user": user})
    assert await world.call("GET", "/api/state", token) == (200, {
        "user": user, "prefs": {}, "saved": ["rome"], "views": {"rome": 2},
        "recent": ["rome"], "wizard": {}, "draft": None})


async def test_writes_land_in_the_record_in_djangos_shape(world: World) -> None:
    token = await world.session(H1, DJANGO_SESSION)
    assert await world.call("PUT", "/api/prefs/lang", token, {"value": "en"}) == (
        200, {"prefs": {"lang": "en"}})
    assert await world.call("PUT", "/api/saved/oslo", token) == (
        200, {"saved": ["oslo", "rome"]})
    assert await world.call("POST", "/api/views/oslo", token) == (
        200, {"views": {"rome": 2, "oslo": 1}, "recent": ["oslo", "rome"]})
    assert await world.call("PUT", "/api/wizard/where", token, {"destination": "oslo"}) == (
        200, {"wizard": {"where": {"destination": "oslo"}}})
    assert await world.call("PUT", "/api/draft", token, {"text": "pack light"}) == (
        200, {"draft": "pack light"})
    django = await world.django_sees(H1)
    assert django == {**DJANGO_SESSION, "prefs": {"lang": "en"}, "saved": ["oslo", "rome"],
                      "views": {"oslo": 1, "rome": 2}, "recent": ["oslo", "rome"],
                      "wizard": {"where": {"destination": "oslo"}}, "draft": "pack light"}
    assert await world.call("DELETE", "/api/wizard", token) == (200, {"wizard": {}})
    assert await world.call("DELETE", "/api/saved/rome", token) == (200, {"saved": ["oslo"]})
    assert await world.call("DELETE", "/api/prefs/lang", token) == (200, {"prefs": {}})
    assert (await world.django_sees(H1))["saved"] == ["oslo"]
    v = await world.redis.hget(session_key(world.prefix, H1), "v")
    assert v == b"9", "one version per write that changed something"


async def test_concurrent_writes_through_the_service_lose_nothing(world: World) -> None:
    token = await world.session(H1, DJANGO_SESSION)
    answers = await asyncio.gather(*(
        [world.call("POST", "/api/views/oslo", token) for _ in range(15)]
        + [world.call("PUT", f"/api/prefs/k_{c}", token, {"value": c}) for c in "abcdefghij"]))
    assert {status for status, _ in answers} == {200}
    django = await world.django_sees(H1)
    assert django["views"] == {"rome": 2, "oslo": 15}, "every view counted once"
    assert django["prefs"] == {f"k_{c}": c for c in "abcdefghij"}, "no pref lost"


async def test_destinations_come_from_djangos_table(world: World) -> None:
    status, body = await world.call("GET", "/api/destinations")
    assert status == 200 and [d["slug"] for d in body["destinations"]] == ["lima", "oslo", "rome"]
    assert await world.call("GET", "/api/destinations/rome") == (200, {"destination": {
        "slug": "rome", "name": "Rome", "country": "Italy", "price": "999.50"}})
    status, body = await world.call("GET", "/api/destinations/paris")
    assert (status, body["error"]) == (404, "not_found")


async def test_refusals(world: World) -> None:
    token = await world.session(H1, DJANGO_SESSION)
    for path in ("/api/me", "/api/state"):
        assert (await world.call("GET", path))[1]["error"] == "not_logged_in", "no token"
        assert (await world.call("GET", path, "forged"))[0] == 401, "a bad token"
        assert (await world.call("GET", path, world.token(H1, audience="orders")))[0] == 401
        assert (await world.call("GET", path, world.token(H2)))[0] == 401, "no record"
    assert (await world.call("GET", "/api/me", world.token(H1, user="someone")))[0] == 401
    status, body = await world.call("PUT", "/api/prefs/lang", token, {"value": "en"},
                                    **{SHADOW_HEADER: "1"})
    assert (status, body["error"]) == (409, "shadow_write_refused")
    for method, path, body in (("PUT", "/api/prefs/Lang", {"value": "en"}),
                               ("PUT", "/api/prefs/lang", {"value": 3}),
                               ("PUT", "/api/draft", {"text": 5}),
                               ("PUT", "/api/wizard/when", ["not", "an", "object"]),
                               ("PUT", "/api/draft", "x" * 10)):
        assert (await world.call(method, path, token, body))[1]["error"] == "bad_request"
    assert (await world.call("PUT", "/api/wizard/why", token, {}))[0] == 404
    assert (await world.call("PUT", "/api/saved/paris", token))[0] == 404
    assert (await world.django_sees(H1)) == DJANGO_SESSION, "nothing refused was written"


async def test_keys_from_the_gateways_jwks_url_alone_and_a_rotated_one(
        tmp_path: Path, database: str, redis_url: str, key_prefix: str, keypair: KeyPair,
        redis_client: aioredis.Redis) -> None:
    """No JWKS file (config.yaml's does not exist here): the service fetches the set at
    start and again when a token names a key published since."""
    published = [public_jwk(keypair.private_key)]

    async def serve_jwks(request: web.Request) -> web.Response:
        return web.json_response({"keys": published})
    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", serve_jwks)
    jwks = TestServer(app, host="127.0.0.1")
    await jwks.start_server()
    port = free_port()
    proc = Proc("trips-new-url", python_module(
        "examples.django_trips.new_service", "--port", str(port), "--config", str(CONFIG),
        "--database-url", database.replace("sqlite+aiosqlite:", "sqlite:"),  # as Django names it
        "--redis-url", redis_url, "--key-prefix", key_prefix,
        "--jwks-url", str(jwks.make_url("/.well-known/jwks.json"))),
        tmp_path, ready_url=f"http://127.0.0.1:{port}/healthz")
    try:
        await asyncio.to_thread(proc.start)  # our loop must serve the JWKS meanwhile
        async with aiohttp.ClientSession() as http:
            world = World(f"http://127.0.0.1:{port}", redis_client, key_prefix, keypair, http)
            token = await world.session(H1, DJANGO_SESSION)
            assert (await world.call("GET", "/api/me", token))[0] == 200
            assert (await world.call("GET", "/api/destinations/rome"))[0] == 200
            rotated = make_keypair(tmp_path / "rotated")
            rotated_world = World(world.url, redis_client, key_prefix, rotated, http)
            assert (await world.call("GET", "/api/me", rotated_world.token(H1)))[0] == 401, \
                "a key nobody published"
            published.append(public_jwk(rotated.private_key))

            async def accepted() -> bool:  # the unknown-kid refresh is at most once a second
                return (await world.call("GET", "/api/me", rotated_world.token(H1)))[0] == 200
            await await_until(accepted, timeout=5, what="the rotated key fetched")
    finally:
        await asyncio.to_thread(proc.stop)
        await jwks.close()
