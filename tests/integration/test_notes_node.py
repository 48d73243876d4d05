"""The notes app's new service in Node (tests/apps/notes_node) as a real process.

It runs against the real Redis and a JWKS the test serves and rotates itself,
and it was written from docs/protocol.md alone: these tests hold it to that
document (the handle's test vector, the write script's text, the token rules)
and to the notes monolith's answers, byte for byte.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import redis.asyncio as aioredis
from aiohttp import DummyCookieJar, web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.handles import session_handle
from gateway.session.signing import public_jwk
from tests.apps.notes.app import create_app
from tests.apps.notes.settings import Settings
from tests.support.keys import SESSION_KEY
from tests.support.net import await_until, free_port
from tests.support.notes_node import NODE_APP, ensure_installed, node_argv
from tests.support.procs import ROOT, Proc
from tests.support.redis_proc import PrivateRedis

ISSUER, SERVICE = "strangler-gateway", "notes"
ANN = {"id": "u-1001", "name": "Ann Lee", "claims": {}}
EXTRA: dict[str, Any] = {
    "_csrf": "c5rf-t0ken", "created_at": 1733190000.25, "one": 1.0, "int": 1, "t": True,
    "big": 2**64 + 1, "tiny": 1e-07, "huge": 1e300, "sub": 5e-324,
    "history": [{"page": "home", "at": 1733190001.5}],
    "flash": {"ü": ["nested", 1, 2.5, None, True]}, "esc": "\ud800 \u2028 \u0000 é 😀",
    "9": {}, "1": [], "deep": [[[[{"a": None}]]]]}


def doc_text(user: dict[str, Any] | None, fields: dict[str, Any] | None = None,
             extra: dict[str, Any] | None = None) -> str:
    """A shared document as the gateway writes one (compact, ASCII)."""
    return json.dumps({"schema": 2, "user": user, "fields": fields or {},
                       "extra": EXTRA if extra is None else extra},
                      separators=(",", ":"), allow_nan=False)


def typed(value: Any) -> str:
    """A value's JSON with its types visible (1 is not 1.0), for byte-for-byte checks."""
    return json.dumps(value, separators=(",", ":"))


@dataclass
class Jwks:
    """The gateway's side of the identity: keys the test signs with and a JWKS it serves."""

    keys: list[tuple[str, Ed25519PrivateKey]] = field(default_factory=list)
    fetches: int = 0
    url: str = ""

    def rotate(self) -> tuple[str, Ed25519PrivateKey]:
        key = Ed25519PrivateKey.generate()
        kid = public_jwk(key)["kid"]
        self.keys = [(kid, key)]
        return kid, key

    def token(self, handle: str, sub: str | None, *, aud: str = SERVICE, iss: str = ISSUER,
              key: tuple[str, Ed25519PrivateKey] | None = None, **extra: Any) -> str:
        kid, private = key or self.keys[0]
        now = int(time.time())
        claims: dict[str, Any] = {"iss": iss, "aud": aud, "sid": handle, "iat": now,
                                  "nbf": now - 5, "exp": now + 300, **extra}
        if sub is None:
            claims["guest"] = True
        else:
            claims["sub"] = sub
        return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": kid})


@pytest.fixture
async def jwks() -> AsyncIterator[Jwks]:
    served = Jwks()
    served.rotate()

    async def handler(request: web.Request) -> web.Response:
        served.fetches += 1
        return web.json_response({"keys": [public_jwk(k) for _, k in served.keys]})

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    served.url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
    yield served
    await runner.cleanup()


@dataclass
class Service:
    url: str
    proc: Proc
    http: aiohttp.ClientSession

    async def call(self, method: str, path: str, token: str | None = None,
                   raw: bytes | None = None, body: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
        sent = dict(headers or {})
        if token is not None:
            sent["X-Strangler-Identity"] = token
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        async with self.http.request(method, self.url + path, data=data,
                                     headers=sent) as resp:
            text = await resp.text()
            return resp.status, text, resp.headers


@pytest.fixture
async def start_service(tmp_path: Path, redis_url: str, key_prefix: str,
                        jwks: Jwks) -> AsyncIterator[Callable[..., Service]]:
    started: list[Service] = []
    key_file = tmp_path / "session-key"
    key_file.write_bytes(SESSION_KEY + b"\n")
    http = aiohttp.ClientSession(cookie_jar=DummyCookieJar())

    def start(service: str = SERVICE, *extra: str, redis: str = redis_url) -> Service:
        port = free_port()
        argv = node_argv(port=port, instance_id=f"n{len(started) + 1}", redis_url=redis,
                         key_prefix=key_prefix, jwks_url=jwks.url, service=service,
                         session_key_file=key_file,
                         extra=("--jwks-cooldown-ms", "100", *extra))
        proc = Proc(f"notes-node-{len(started)}", argv, tmp_path,
                    ready_url=f"http://127.0.0.1:{port}/healthz").start(timeout=20)
        started.append(Service(f"http://127.0.0.1:{port}", proc, http))
        return started[-1]

    yield start
    for s in started:
        s.proc.stop()
    await http.close()


@pytest.fixture(autouse=True, scope="module")
def _installed() -> None:
    """node_modules before any test runs node (npm ci on a fresh clone)."""
    ensure_installed()


def handle(sid: str) -> str:
    return session_handle(SESSION_KEY, sid)


async def seed(redis: aioredis.Redis, prefix: str, sid: str, doc: str, v: int = 7) -> str:
    """A record as the gateway leaves one after pulling a session from legacy."""
    h = handle(sid)
    await redis.hset(f"{prefix}:{{{h}}}", mapping={"doc": doc, "v": v, "lv": v, "node": "a@1",
                                                   "lrev": 3, "base": doc})
    return h


async def record(redis: aioredis.Redis, prefix: str, h: str) -> dict[str, str]:
    raw = await redis.hgetall(f"{prefix}:{{{h}}}")
    return {k.decode(): v.decode() for k, v in raw.items()}


# ---------------------------------------------------------------- the document's own tests

def test_handle_matches_the_protocol_test_vector() -> None:
    out = subprocess.run(
        ["node", "-e", "const {handleOf}=require('./lib/records');"
         "process.stdout.write(handleOf(Buffer.from('k'.repeat(32)), 'Zm9v'))"],
        cwd=NODE_APP, capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout == "QurXjgqzbBcI2TOepRpTihIA-PzV-ztDyXVpDrEKumk"


def test_write_script_is_the_one_docs_protocol_states() -> None:
    """A change to the script in docs/protocol.md fails here until the service follows."""
    stated = re.search(r"```lua\n(.*?)```", (ROOT / "docs" / "protocol.md").read_text(),
                       re.S)
    assert stated is not None
    held = subprocess.run(
        ["node", "-e", "process.stdout.write(require('./lib/write_script').WRITE_SCRIPT)"],
        cwd=NODE_APP, capture_output=True, text=True, check=True, timeout=30).stdout
    assert held == stated.group(1)


# ---------------------------------------------------------------- identity

async def test_tokens_it_must_refuse(start_service: Callable[..., Service], jwks: Jwks,
                                     redis_client: aioredis.Redis, key_prefix: str) -> None:
    svc = start_service()
    h = await seed(redis_client, key_prefix, "ann-session-0001", doc_text(ANN))
    status, text, _ = await svc.call("GET", "/api/me", jwks.token(h, "u-1001"))
    assert (status, json.loads(text)) == (200, {"id": "u-1001", "name": "Ann Lee"})

    kid, key = jwks.keys[0]
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": SERVICE, "sid": h, "sub": "u-1001", "iat": now,
              "exp": now + 300}
    unsigned = (base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=") + b"."
                + base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=") + b".")
    refused = {
        "another service": jwks.token(h, "u-1001", aud="cart"),
        "another issuer": jwks.token(h, "u-1001", iss="someone-else"),
        "alg none": unsigned.decode(),
        "HS256": jwt.encode(claims, "k" * 32, algorithm="HS256", headers={"kid": kid}),
        "expired": jwks.token(h, "u-1001", exp=now - 60, iat=now - 400, nbf=now - 405),
        "no sid": jwt.encode({k: v for k, v in claims.items() if k != "sid"}, key,
                             algorithm="EdDSA", headers={"kid": kid}),
        "not a handle": jwks.token("ann-session-0001", "u-1001"),
        "garbage": "not.a.token",
    }
    for what, token in refused.items():
        for method, path in (("GET", "/api/state"), ("POST", "/api/visits/home")):
            status, text, _ = await svc.call(method, path, token)
            assert (status, json.loads(text)) == (401, {"error": "not_logged_in"}), what
    assert json.loads((await record(redis_client, key_prefix, h))["v"]) == 7


async def test_a_token_for_notes_is_refused_by_a_service_of_another_name(
        start_service: Callable[..., Service], jwks: Jwks, redis_client: aioredis.Redis,
        key_prefix: str) -> None:
    other = start_service("billing")
    h = await seed(redis_client, key_prefix, "ann-session-0002", doc_text(ANN))
    status, text, _ = await other.call("GET", "/api/me", jwks.token(h, "u-1001"))
    assert (status, json.loads(text)) == (401, {"error": "not_logged_in"})
    status, _, _ = await other.call("GET", "/api/me", jwks.token(h, "u-1001", aud="billing"))
    assert status == 200


async def test_an_unknown_kid_fetches_the_keys_again(start_service: Callable[..., Service],
                                                     jwks: Jwks, redis_client: aioredis.Redis,
                                                     key_prefix: str) -> None:
    svc = start_service()
    h = await seed(redis_client, key_prefix, "ann-session-0003", doc_text(ANN))
    assert (await svc.call("GET", "/api/me", jwks.token(h, "u-1001")))[0] == 200
    fetched = jwks.fetches
    jwks.rotate()  # the gateway's key file replaced: a new kid in the JWKS

    async def accepted() -> bool:
        return (await svc.call("GET", "/api/me", jwks.token(h, "u-1001")))[0] == 200

    await await_until(accepted, timeout=10, what="the rotated key accepted")
    assert jwks.fetches > fetched


# ---------------------------------------------------------------- the record

async def test_concurrent_writers_all_land(start_service: Callable[..., Service], jwks: Jwks,
                                           redis_client: aioredis.Redis,
                                           key_prefix: str) -> None:
    """Two instances, 40 writes at once on one session: every compare-and-set that lost
    re-read and re-applied, so every change is there exactly once."""
    a, b = start_service(), start_service()
    h = await seed(redis_client, key_prefix, "ann-session-0004", doc_text(ANN))
    token = jwks.token(h, "u-1001")
    writes = [svc.call("POST", "/api/visits/home", token) for svc in (a, b) * 10] + \
             [svc.call("PUT", f"/api/prefs/k{i}", token, body={"value": f"v{i}"})
              for i, svc in enumerate((a, b) * 5)] + \
             [svc.call("POST", "/api/tags", token, body={"tag": f"t{i}"})
              for i, svc in enumerate((b, a) * 5)]
    replies = await asyncio.gather(*writes)
    assert [r[0] for r in replies] == [200] * len(writes), [r[1] for r in replies]
    state = json.loads((await a.call("GET", "/api/state", token))[1])
    assert state["visits"] == {"home": 20}
    assert state["prefs"] == {f"k{i}": f"v{i}" for i in range(10)}
    assert state["tags"] == sorted(f"t{i}" for i in range(10))
    rec = await record(redis_client, key_prefix, h)
    assert int(rec["v"]) == 7 + 40
    assert len(rec["ops"].split()) == 32  # the last 32 op ids, as the script keeps them
    assert (rec["lv"], rec["node"], rec["lrev"]) == ("7", "a@1", "3")  # the gateway's


async def test_undeclared_keys_are_written_back_byte_for_byte(
        start_service: Callable[..., Service], jwks: Jwks, redis_client: aioredis.Redis,
        key_prefix: str) -> None:
    svc = start_service()
    user = {"id": "u-1001", "name": "Ann Lee", "claims": {"email": "ann@example.com"}}
    h = await seed(redis_client, key_prefix, "ann-session-0005", doc_text(
        user, {"prefs": {"z": "1", "a": "2"}, "unknown_field": [1.0, 2]}))
    token = jwks.token(h, "u-1001")
    for method, path, body in [("PUT", "/api/prefs/lang", {"value": "en"}),
                               ("POST", "/api/tags", {"tag": "😀 b"}),
                               ("POST", "/api/tags", {"tag": "\uff01a"}),
                               ("POST", "/api/visits/home", None),
                               ("PUT", "/api/draft", {"text": "é\n\"x\""}),
                               ("DELETE", "/api/prefs/z", None)] * 3:
        assert (await svc.call(method, path, token, body=body))[0] == 200
    doc = json.loads((await record(redis_client, key_prefix, h))["doc"])
    assert typed(doc["extra"]) == typed(EXTRA)
    assert doc["user"] == user
    assert typed(doc["fields"]) == typed({
        "prefs": {"a": "2", "lang": "en"}, "unknown_field": [1.0, 2],
        "tags": ["\uff01a", "😀 b"], "visits": {"home": 3}, "draft": "é\n\"x\""})


async def test_a_shadow_copy_never_writes(start_service: Callable[..., Service], jwks: Jwks,
                                          redis_client: aioredis.Redis,
                                          key_prefix: str) -> None:
    svc = start_service()
    h = await seed(redis_client, key_prefix, "ann-session-0006", doc_text(ANN))
    token = jwks.token(h, "u-1001")
    shadow = {"X-Strangler-Shadow": "1"}
    for method, path, body in [("PUT", "/api/prefs/lang", {"value": "en"}),
                               ("POST", "/api/visits/home", None),
                               ("PUT", "/api/draft", {"text": "x"})]:
        status, text, _ = await svc.call(method, path, token, body=body, headers=shadow)
        assert (status, json.loads(text)) == (409, {"error": "shadow_write_refused"})
    status, _, _ = await svc.call("POST", "/api/tags", None, body={"tag": "x"}, headers=shadow)
    assert status == 409
    assert (await svc.call("GET", "/api/state", token, headers=shadow))[0] == 200
    assert (await record(redis_client, key_prefix, h))["v"] == "7"


async def test_no_session_of_ones_own(start_service: Callable[..., Service], jwks: Jwks,
                                      redis_client: aioredis.Redis, key_prefix: str) -> None:
    """A missing record or another user's is "not logged in", never someone's session."""
    svc = start_service()
    h = await seed(redis_client, key_prefix, "ann-session-0007", doc_text(ANN))
    empty = {"user": None, "prefs": {}, "tags": [], "visits": {}, "draft": None}
    for token in (jwks.token(h, "u-1002"), jwks.token(h, None),
                  jwks.token(handle("no-such-session-1"), "u-1001")):
        status, text, _ = await svc.call("GET", "/api/state", token)
        assert (status, json.loads(text)) == (200, empty)
        assert (await svc.call("GET", "/api/me", token))[0] == 401
        status, text, _ = await svc.call("POST", "/api/visits/home", token)
        assert (status, json.loads(text)) == (401, {"error": "not_logged_in"})
    assert (await record(redis_client, key_prefix, h))["v"] == "7"


async def test_a_visitor_first_write_makes_a_session(start_service: Callable[..., Service],
                                                     jwks: Jwks, redis_client: aioredis.Redis,
                                                     key_prefix: str) -> None:
    svc = start_service()
    status, text, headers = await svc.call("PUT", "/api/prefs/theme", None,
                                           body={"value": "dark"})
    assert status == 200, text
    cookie = headers["Set-Cookie"]
    match = re.fullmatch(r"sessionid=([A-Za-z0-9_-]{43}); HttpOnly; Path=/; SameSite=Lax",
                         cookie)
    assert match, cookie
    h = handle(match.group(1))
    rec = await record(redis_client, key_prefix, h)
    assert json.loads(rec["doc"]) == {"schema": 2, "user": None,
                                      "fields": {"prefs": {"theme": "dark"}}, "extra": {}}
    assert json.loads(rec["base"]) == {"schema": 2, "user": None, "fields": {}, "extra": {}}
    assert (rec["v"], rec["lv"], rec["node"], rec["lrev"]) == ("1", "0", "", "0")
    assert 0 < await redis_client.ttl(f"{key_prefix}:{{{h}}}") <= 86400
    # the gateway then gives that guest a token for it
    status, text, _ = await svc.call("POST", "/api/tags", jwks.token(h, None), body={"tag": "a"})
    assert (status, json.loads(text)["prefs"], json.loads(text)["tags"]) == \
        (200, {"theme": "dark"}, ["a"])


async def test_a_hung_redis_refuses_before_a_write_and_applies_a_lost_one_once(
        start_service: Callable[..., Service], jwks: Jwks, tmp_path: Path,
        key_prefix: str) -> None:
    """Redis hung before anything is written: 503 + Retry-After, nothing written. Writes
    held back after the read (CLIENT PAUSE WRITE): the service re-sends the script with
    the same op id until its budget is spent, answers 500 outcome_unknown, and when Redis
    lets the queued copies run, the change is applied exactly once."""
    private = PrivateRedis(tmp_path / "redis").start()
    try:
        svc = start_service(SERVICE, "--write-budget-ms", "600", redis=private.url)
        client = aioredis.Redis.from_url(private.url)
        h = await seed(client, key_prefix, "ann-session-0009", doc_text(ANN))
        token = jwks.token(h, "u-1001")
        private.pause()
        try:
            for method, path in (("GET", "/api/state"), ("POST", "/api/visits/home")):
                status, text, headers = await svc.call(method, path, token)
                assert (status, headers.get("Retry-After")) == (503, "1"), text
        finally:
            private.resume()
        assert (await record(client, key_prefix, h))["v"] == "7"

        await client.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
        status, text, _ = await svc.call("POST", "/api/visits/home", token)
        assert (status, json.loads(text)) == (500, {"error": "outcome_unknown"})

        async def landed() -> dict[str, str] | None:
            rec = await record(client, key_prefix, h)
            return rec if rec["v"] != "7" else None

        rec = await await_until(landed, timeout=10, what="the queued write to land")
        assert rec["v"] == "8" and len(rec["ops"].split()) == 1
        assert json.loads(rec["doc"])["fields"]["visits"] == {"home": 1}
        status, text, _ = await svc.call("GET", "/api/state", token)
        assert json.loads(text)["visits"] == {"home": 1}
        await client.aclose()
    finally:
        private.stop()


# ---------------------------------------------------------------- same answers as the monolith

MALFORMED: list[tuple[str, str, bytes | None]] = [
    ("PUT", "/api/prefs/lang", b"{not json"),
    ("PUT", "/api/prefs/lang", b'{"value": NaN}'),
    ("PUT", "/api/prefs/lang", b'{"value": 1e400}'),
    ("PUT", "/api/prefs/lang", b'{"value": "\xff"}'),
    ("PUT", "/api/prefs/lang", b'["value"]'),
    ("PUT", "/api/prefs/lang", b'{"value": 5}'),
    ("PUT", "/api/prefs/lang", b'{"value": "' + b"x" * 201 + b'"}'),
    ("PUT", "/api/prefs/b%20d", b'{"value": "x"}'),
    ("PUT", "/api/prefs/" + "k" * 65, b'{"value": "x"}'),
    ("DELETE", "/api/prefs/no$", None),
    ("POST", "/api/tags", b'{"tag": ""}'),
    ("POST", "/api/tags", b'{"tag": " edge"}'),
    ("POST", "/api/tags", b'{"tag": "a\\u0007"}'),
    ("POST", "/api/tags", b'{"tag": "' + "é".encode() * 41 + b'"}'),
    ("POST", "/api/tags", b"[" * 70 + b"]" * 70),
    ("DELETE", "/api/tags/%20x", None),
    ("POST", "/api/visits/a%2Fb", None),
    ("PUT", "/api/draft", b'{"text": null}'),
    ("PUT", "/api/draft", b'{"text": "' + b"y" * 10001 + b'"}'),
    ("PUT", "/api/draft", b"x" * (256 * 1024 + 1)),
    ("PUT", "/api/draft", b""),
]


async def test_malformed_input_gets_the_monolith_answer_byte_for_byte(
        start_service: Callable[..., Service], aiohttp_client: Any) -> None:
    svc = start_service()
    legacy = await aiohttp_client(create_app(Settings(node_id="n1")),
                                  cookie_jar=DummyCookieJar())
    for method, path, raw in MALFORMED:
        resp = await legacy.request(method, path, data=raw)
        expected = (resp.status, await resp.text())
        status, text, headers = await svc.call(method, path, None, raw=raw)
        assert (status, text) == expected, (method, path, raw and raw[:40])
        assert "Set-Cookie" not in headers  # a refused request makes no session


async def test_the_same_writes_get_the_same_answers(start_service: Callable[..., Service],
                                                    jwks: Jwks, aiohttp_client: Any,
                                                    redis_client: aioredis.Redis,
                                                    key_prefix: str) -> None:
    """Ann logged in on the monolith and on the service: each answer, as text, is the same."""
    svc = start_service()
    h = await seed(redis_client, key_prefix, "ann-session-0008", doc_text(ANN))
    token = jwks.token(h, "u-1001")
    legacy = await aiohttp_client(create_app(Settings(node_id="n1")))
    resp = await legacy.post("/login", json={"username": "ann", "password": "ann-pass"})
    assert resp.status == 200, await resp.text()
    steps: list[tuple[str, str, Any]] = [
        ("GET", "/api/state", None), ("GET", "/api/me", None),
        ("PUT", "/api/prefs/theme", {"value": "dark"}), ("PUT", "/api/prefs/lang", {"value": ""}),
        ("PUT", "/api/prefs/theme", {"value": "lïght"}), ("DELETE", "/api/prefs/lang", None),
        ("DELETE", "/api/prefs/never", None), ("POST", "/api/tags", {"tag": "work"}),
        ("POST", "/api/tags", {"tag": "Ünï 😀"}), ("POST", "/api/tags", {"tag": "\uff01"}),
        ("POST", "/api/tags", {"tag": "work"}), ("DELETE", "/api/tags/work", None),
        ("DELETE", "/api/tags/%C3%9Cn%C3%AF%20%F0%9F%98%80", None),
        ("POST", "/api/visits/home", None), ("POST", "/api/visits/home", None),
        ("POST", "/api/visits/docs.v2", None), ("PUT", "/api/draft", {"text": "a\tb\u2028"}),
        ("PUT", "/api/draft", {"text": ""}), ("GET", "/api/state", None),
        *[("PUT", f"/api/prefs/p{i}", {"value": "v"}) for i in range(33)],
        *[("POST", "/api/tags", {"tag": f"t{i}"}) for i in range(51)],
    ]
    for method, path, body in steps:
        resp = await legacy.request(method, path, json=body)
        expected = (resp.status, await resp.text())
        status, text, _ = await svc.call(method, path, token, body=body)
        assert (status, text) == expected, (method, path, body)
