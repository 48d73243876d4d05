"""Hostile clients against real processes: forged identity tokens, planted session ids,
cookie flags ("Nothing lost, nothing done twice", part 5).

Two stacks (two legacy nodes, two new instances, one gateway each). The gateway
trusts ``127.0.0.2`` as its load balancer: a client connecting from that
loopback address stands for "the request came in over TLS and a proxy said so";
one from ``127.0.0.1`` is an ordinary, untrusted client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yarl import URL

from adapters.claims import Identity, session_claims
from adapters.handles import session_handle
from adapters.wire import IDENTITY_HEADER, SESSION_COOKIE
from gateway.settings import TokensSection
from tests.support.checks import expect
from tests.support.shop import Admin, Reply
from tests.support.stack import Stack

TRUSTED = "127.0.0.2"
BEHIND_TLS = {"gateway_overrides": {"trusted_proxies": [f"{TRUSTED}/32"]}}
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
NOT_LOGGED_IN = "not_logged_in"


class Client:
    """A browser-like client with a cookie jar; ``source`` picks its local address."""

    def __init__(self, base: str, *, source: str | None = None,
                 cookies: dict[str, str] | None = None) -> None:
        self.base = base
        self.jar = aiohttp.CookieJar(unsafe=True)
        if cookies:
            self.jar.update_cookies(cookies, URL(base))
        connector = aiohttp.TCPConnector(local_addr=(source, 0) if source else None)
        self.http = aiohttp.ClientSession(connector=connector, cookie_jar=self.jar,
                                          timeout=aiohttp.ClientTimeout(total=30))
        self.replies: list[tuple[str, Reply]] = []
        """Every raw reply this client saw (headers and body text), for leak checks."""

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()

    async def call(self, method: str, path: str, json_body: Any = None,
                   headers: dict[str, str] | None = None) -> Reply:
        async with self.http.request(method, self.base + path, json=json_body,
                                     headers=headers) as resp:
            text = await resp.text()
            body = json.loads(text) if text.startswith("{") else text
            reply = Reply(resp.status, body, resp.headers)
        self.replies.append((text, reply))
        return reply

    async def login(self, username: str = "alice", headers: dict[str, str] | None = None
                    ) -> Reply:
        return await self.call("POST", "/login", {"username": username,
                                                  "password": "wonderland"}, headers)

    async def me(self, headers: dict[str, str] | None = None) -> Reply:
        return await self.call("GET", "/api/me", headers=headers)

    @property
    def sid(self) -> str | None:
        for cookie in self.jar:
            if cookie.key == SESSION_COOKIE:
                return cookie.value
        return None

    def assert_no_token_seen(self) -> None:
        for text, reply in self.replies:
            assert not JWT.search(text), f"a JWT in a body: {text[:200]}"
            for name, value in reply.headers.items():
                assert name.lower().replace("_", "-") != IDENTITY_HEADER.lower()
                assert not JWT.search(value), f"a JWT in {name}"


def _set_cookie(reply: Reply, name: str) -> list[str]:
    for value in reply.headers.getall("Set-Cookie", ()):
        if value.startswith(f"{name}="):
            return value.split(";")
    raise AssertionError(f"no {name} cookie set: {reply.headers.getall('Set-Cookie', ())}")


def cookie_attrs(reply: Reply, name: str) -> set[str]:
    return {a.strip().lower() for a in _set_cookie(reply, name)[1:]}


def cookie_value(reply: Reply, name: str) -> str:
    return _set_cookie(reply, name)[0].split("=", 1)[1]


# ================================================================ fixation and cookies


async def _fixation_round(stack: Stack, backend: str) -> None:
    url = stack.url()
    # 1. An attacker plants an id of their choosing; the victim logs in with it.
    planted = secrets.token_urlsafe(32)
    async with Client(url, cookies={SESSION_COOKIE: planted}) as victim:
        reply = await victim.login()
        assert reply.status == 200 and reply.backend == backend
        assert victim.sid not in (None, planted), "login kept the planted session id"
        attrs = cookie_attrs(reply, SESSION_COOKIE)
        assert {"httponly", "samesite=lax"} <= attrs and "secure" not in attrs, attrs
        assert (await victim.me()).body["user"]["username"] == "alice"
        victim.assert_no_token_seen()
    async with Client(url, cookies={SESSION_COOKIE: planted}) as attacker:
        assert (await attacker.me()).status == 401
        assert (await attacker.call("GET", "/api/cart")).status == 401
    # 2. The attacker plants their own live session (bob's); the victim logs in as alice.
    async with Client(url) as bob:
        expect(await bob.login("bob"), 200, "login as bob")
        bobs = bob.sid
    assert bobs is not None
    async with Client(url, cookies={SESSION_COOKIE: bobs}) as victim:
        assert (await victim.login("alice")).status == 200
        assert victim.sid not in (None, bobs)
    async with Client(url, cookies={SESSION_COOKIE: bobs}) as attacker:
        reply = await attacker.me()
        assert reply.status == 401, "the planted id is still a live (or alice's) session"
    # 3. Secure exactly when a trusted proxy says the request came over TLS.
    tls = {"X-Forwarded-Proto": "https"}
    async with Client(url, source=TRUSTED) as behind_tls:
        reply = await behind_tls.login(headers=tls)
        assert {"httponly", "samesite=lax", "secure"} <= cookie_attrs(reply, SESSION_COOKIE)
        if backend == "legacy":
            assert "secure" in cookie_attrs(reply, "strangler_aff")
        # The jar keeps a Secure cookie off this plain-HTTP hop; the browser behind the
        # load balancer would send it, so send it by hand.
        cookie = f"{SESSION_COOKIE}={cookie_value(reply, SESSION_COOKIE)}"
        assert (await behind_tls.me(headers={**tls, "Cookie": cookie})).status == 200
    async with Client(url) as liar:  # an ordinary client claiming TLS is not believed
        reply = await liar.login(headers=tls)
        assert "secure" not in cookie_attrs(reply, SESSION_COOKIE)
        if backend == "legacy":
            assert "secure" not in cookie_attrs(reply, "strangler_aff")


@pytest.mark.parametrize("stack", [BEHIND_TLS], indirect=True)
async def test_login_replaces_a_planted_session_id_and_flags_its_cookie(stack: Stack,
                                                                        admin: Admin) -> None:
    await _fixation_round(stack, "legacy")
    assert (await admin.set_route("auth", "new")).status == 200
    await _fixation_round(stack, "new")


# ================================================================ forged identity tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _handmade(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}." \
           f"{_b64(signature)}"


def _hs256(secret: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    header = {**header, "alg": "HS256"}
    unsigned = _handmade(header, payload).rsplit(".", 1)[0]
    return f"{unsigned}.{_b64(hmac.new(secret, unsigned.encode(), hashlib.sha256).digest())}"


def _forgeries(stack: Stack, sid: str, uid: int, other_uid: int) -> dict[str, str]:
    cfg = TokensSection()
    key, kid = stack.keys.private_key, stack.keys.kid
    now = int(time.time())

    def claims(**changes: Any) -> dict[str, Any]:
        base = session_claims(Identity(sid, str(uid), "alice"), issuer=cfg.issuer,
                              audience="auth", now=now, ttl_s=300)
        base.update(changes)
        return {k: v for k, v in base.items() if v is not None}

    def signed(payload: dict[str, Any], signer: Ed25519PrivateKey = key, **header: Any) -> str:
        return jwt.encode(payload, signer, algorithm="EdDSA", headers={"kid": kid, **header})

    public = key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "alg_none": _handmade({"alg": "none", "typ": "JWT", "kid": kid}, claims()),
        "alg_none_signed": _handmade({"alg": "none", "kid": kid}, claims(), b"sig"),
        "hs256_public_raw": _hs256(raw, {"typ": "JWT", "kid": kid}, claims()),
        "hs256_public_pem": _hs256(pem, {"typ": "JWT", "kid": kid}, claims()),
        "expired": signed(claims(iat=now - 4000, nbf=now - 4000, exp=now - 3600)),
        "missing_exp": signed(claims(exp=None)),
        "wrong_aud": signed(claims(aud="someone-else")),
        "another_service_aud": signed(claims(aud="cart")),
        "wrong_iss": signed(claims(iss="evil-gateway")),
        "unknown_kid": signed(claims(), kid="no-such-key"),
        "path_kid": signed(claims(), kid="../../../../etc/passwd"),
        "jwks_path_kid": signed(claims(), kid=str(stack.keys.jwks)),
        "another_key_same_kid": signed(claims(), signer=Ed25519PrivateKey.generate()),
        "someone_elses_session": signed(claims(sub=str(other_uid), name="bob")),
        "garbage": "not.a.jwt",
    }


async def _direct_me(http: aiohttp.ClientSession, base: str, token: str
                     ) -> tuple[int, Any]:
    async with http.get(base + "/api/me", headers={IDENTITY_HEADER: token}) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_forged_tokens_are_refused_by_new_and_never_honoured_through_the_gateway(
        stack: Stack, admin: Admin) -> None:
    for route in ("auth", "cart"):
        assert (await admin.set_route(route, "new")).status == 200
    async with Client(stack.url()) as alice, Client(stack.url()) as bob:
        assert expect(await alice.login("alice"), 200, "login as alice").backend == "new"
        expect(await bob.login("bob"), 200, "login as bob")
        uid = expect(await alice.me(), 200, "alice's /api/me").body["user"]["id"]
        bob_uid = expect(await bob.me(), 200, "bob's /api/me").body["user"]["id"]
        assert alice.sid is not None
        sid = session_handle(stack.session_key.encode(), alice.sid)  # what tokens name
        cfg = TokensSection()
        genuine = jwt.encode(
            session_claims(Identity(sid, str(uid), "alice"), issuer=cfg.issuer,
                           audience="auth", now=int(time.time()), ttl_s=300),
            stack.keys.private_key, algorithm="EdDSA", headers={"kid": stack.keys.kid})

        # Directly at every new instance: the genuine token works (so the key, claims
        # and session are right), and every forgery is a 401, never anonymous.
        async with aiohttp.ClientSession() as http:
            for port in stack.new_ports.values():
                base = f"http://127.0.0.1:{port}"
                assert await _direct_me(http, base, genuine) == (
                    200, {"user": {"id": uid, "username": "alice"}})
                for name, token in _forgeries(stack, sid, uid, bob_uid).items():
                    status, body = await _direct_me(http, base, token)
                    assert (status, body.get("error")) == (401, NOT_LOGGED_IN), name

        # Through the gateway, even the genuine token is just a header a client made up:
        # stripped (in any spelling), so an anonymous client stays anonymous...
        async with Client(stack.url()) as stranger:
            for name in (IDENTITY_HEADER, "X_Strangler_Identity", "x-strangler_identity"):
                reply = await stranger.me(headers={name: genuine})
                assert reply.status == 401 and reply.backend == "new", name
                assert (await stranger.call("GET", "/api/cart",
                                            headers={name: genuine})).status == 401
            stranger.assert_no_token_seen()
        # ...and a logged-in one stays who the gateway says it is.
        reply = await bob.me(headers={IDENTITY_HEADER: genuine})
        assert reply.body == {"user": {"id": bob_uid, "username": "bob"}}
        assert (await bob.call("POST", "/api/cart/items", {"product_id": 2, "qty": 1},
                               headers={IDENTITY_HEADER: genuine})).status == 200
        assert [i["product_id"] for i in (await alice.call("GET", "/api/cart")).body["items"]] \
            == [], "bob's forged request wrote into alice's cart"
        alice.assert_no_token_seen()
        bob.assert_no_token_seen()
