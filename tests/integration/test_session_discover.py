"""Session discovery against real monoliths: the notes app through its export hook
(``strangler session discover --hook``), and the shop through a running gateway
(``GET /api/session/schema`` and ``--admin``).

The notes nodes run in-process on loopback; the command runs in a thread (it
blocks), while users keep changing their sessions on the nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler

from adapters.profile import build
from gateway.runtime.app import Gateway
from gateway.session.sampler import SamplerLimits
from legacy_shop.app import create_app as create_shop
from legacy_shop.settings import Settings as ShopSettings
from strangler.cli import main
from tests.apps.notes.app import create_app as create_notes
from tests.apps.notes.settings import Settings as NotesSettings
from tests.support.harness import ADMIN_TOKEN, INTERNAL_TOKEN, GatewayHarness
from tests.support.keys import KeyPair
from tests.support.shop import ShopUser

ROOT = Path(__file__).resolve().parents[2]
Seen = list[tuple[str, str, dict[str, str]]]


def _recorder(seen: Seen) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_internal/"):
            seen.append((request.method, request.path, dict(request.headers)))
        return await handler(request)

    return record


@pytest.fixture
async def notes_nodes(internal_token: str) -> AsyncIterator[tuple[dict[str, str], Seen]]:
    seen: Seen = []
    servers = {}
    for node in ("n1", "n2"):
        app = create_notes(NotesSettings(node_id=node, internal_token=internal_token))
        app.middlewares.append(_recorder(seen))
        servers[node] = TestServer(app, host="127.0.0.1")
        await servers[node].start_server()
    try:
        yield {n: str(s.make_url("")).rstrip("/") for n, s in servers.items()}, seen
    finally:
        for s in servers.values():
            await s.close()


class Notes:
    """A notes user on one node; names its ``sessionid`` itself."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base, self.sid = http, base, ""

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Cookie": f"sessionid={self.sid}"} if self.sid else {}
        async with self.http.request(method, self.base + path, json=body,
                                     headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            if "sessionid" in resp.cookies:
                self.sid = resp.cookies["sessionid"].value
            return await resp.json()

    async def fill(self, n: int) -> None:
        await self.call("PUT", "/api/prefs/theme", {"value": ["dark", "light"][n % 2]})
        await self.call("PUT", "/api/prefs/lang", {"value": "en"})
        await self.call("POST", "/api/tags", {"tag": f"tag-{n % 3}"})
        await self.call("POST", f"/api/visits/{['home', 'docs'][n % 2]}")
        await self.call("PUT", "/api/draft", {"text": f"draft number {n}"})


async def _keep_changing(users: list[Notes], stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        for u in users:
            await u.fill(n)
        n += 1
        await asyncio.sleep(0.05)


async def _discover(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, ["--config", str(ROOT / "config.yaml"), "session",
                                          "discover", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return code, out


async def test_discover_through_the_hook_proposes_the_notes_profile(
        notes_nodes: tuple[dict[str, str], Seen], internal_token: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    urls, seen = notes_nodes
    async with aiohttp.ClientSession() as http:
        users = []
        for i, name in enumerate(("ann", "bo", "cy", None, None)):
            u = Notes(http, urls["n1" if i % 2 else "n2"])
            if name:
                await u.call("POST", "/login", {"username": name, "password": f"{name}-pass"})
            await u.fill(0)  # a guest's first write creates its session
            users.append(u)
        secrets = [json.dumps((await u.call("GET", "/api/debug/raw"))["_csrf"]) for u in users]
        token_file = tmp_path / "token"
        token_file.write_text(internal_token + "\n")
        stop = asyncio.Event()
        changing = asyncio.create_task(_keep_changing(users, stop))
        try:
            _, out = await _discover(
                capsys, "--hook", urls["n1"], "--hook", urls["n2"], "--token-file",
                str(token_file), "--session-id", *[u.sid for u in users], "--samples", "3",
                "--interval-s", "0.4", "--cookie", "sessionid", "--duplicate-cookies", "last",
                "--headers", "X-Notes-Session,X-Notes-Rev,X-Notes-Node", "--stats")
        finally:
            stop.set()
            await changing
    session = yaml.safe_load(out)["session"]
    assert session["identity"] == {"user_id": {"path": "/_auth_user_id", "type": "string"},
                                   "name": {"path": "/_auth_user_name"}}
    assert session["fields"] == {
        "draft": {"path": "/draft", "rule": "lww", "type": "string"},
        "prefs": {"path": "/prefs", "rule": "map", "values": "lww", "value_type": "string"},
        "tags": {"path": "/tags", "rule": "set", "items": "string"},
        "visits": {"path": "/visits", "rule": "counter"}}
    for key in ("/_csrf", "/created_at", "/history", "/flash"):
        assert f"#   {key}: " in out, key
    assert "# 15 samples of 5 sessions" in out  # the --stats table, as comments
    profile = build(session)
    assert profile.cookie == "sessionid" and "EDIT" not in out and "CHECK" not in out
    assert profile.response_headers == ("X-Notes-Session", "X-Notes-Rev", "X-Notes-Node")
    for secret in secrets:
        assert secret.strip('"') not in out
    assert "draft number" not in out and "Ann Lee" not in out
    # read only: GETs with the token, never a fence, never a PUT or DELETE
    assert seen and {m for m, _, _ in seen} == {"GET"}
    assert all(h.get("X-Internal-Token") == internal_token and "X-Strangler-Fence" not in h
               for _, _, h in seen)


async def test_discover_through_the_hook_says_what_it_could_not_find(
        notes_nodes: tuple[dict[str, str], Seen], internal_token: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    urls, _ = notes_nodes
    token_file = tmp_path / "token"
    token_file.write_text("wrong-token")
    code = await asyncio.to_thread(main, [
        "--config", str(ROOT / "config.yaml"), "session", "discover", "--hook", urls["n1"],
        "--token-file", str(token_file), "--session-id", "a" * 22, "--samples", "1"])
    assert code == 1 and "answered 403" in capsys.readouterr().err
    token_file.write_text(internal_token)
    code = await asyncio.to_thread(main, [
        "--config", str(ROOT / "config.yaml"), "session", "discover", "--hook", urls["n1"],
        "--token-file", str(token_file), "--session-id", "a" * 22, "--samples", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "1 of 1 sessions were never found" in err
    assert "no session could be sampled" in err


# ---------------------------------------------------------------- through a gateway
@pytest.fixture
async def shop_gateway(tmp_path: Path, redis_url: str, key_prefix: str, keypair: KeyPair,
                       monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GatewayHarness]:
    db = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    nodes = {}
    for node in ("a", "b"):
        app = create_shop(ShopSettings(node_id=node, database_url=db,
                                       internal_token=INTERNAL_TOKEN))
        nodes[node] = TestServer(app, host="127.0.0.1")
        await nodes[node].start_server()
    harness = GatewayHarness(redis_url, key_prefix, keypair,
                             legacy={n: str(s.make_url("")) for n, s in nodes.items()})
    monkeypatch.setenv("STRANGLER_TEST_INTERNAL_TOKEN", INTERNAL_TOKEN)
    monkeypatch.setenv("STRANGLER_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
    # as harness.start() does, but with a sampler that takes every export
    harness.instance = Gateway(harness.config(),
                               sampling=SamplerLimits(share=1.0, per_session_s=0))
    try:
        await harness.instance.start()
        yield harness
    finally:
        await harness.stop()
        for s in nodes.values():
            await s.close()


async def test_the_gateway_proposes_the_shop_profile_from_what_it_bridged(
        shop_gateway: GatewayHarness, capsys: pytest.CaptureFixture[str]) -> None:
    async with contextlib.AsyncExitStack() as stack:
        for name in ("alice", "bob", "carol"):
            user = await stack.enter_async_context(ShopUser(shop_gateway.url))
            assert (await user.login(name)).status == 200
            for product in (1, 2, 2):
                reply = await user.call("POST", "/api/cart/items",
                                        {"product_id": product, "qty": 1})
                assert reply.status == 200, reply.body
    async with aiohttp.ClientSession() as http, \
            http.get(shop_gateway.admin_url + "/api/session/schema") as resp:
        assert resp.status == 200  # open, like the other reads: no token
        body = await resp.json()
    assert body["sampling"]["taken"] >= 6 and body["stats"]["sessions"] >= 3
    session = body["proposal"]["session"]
    assert session == yaml.safe_load(body["proposal"]["yaml"])["session"]
    assert session["cookie"] == "shop_session" and session["duplicate_cookies"] == "last"
    assert session["identity"] == {"user_id": {"path": "/uid", "type": "integer"},
                                   "name": {"path": "/uname"}}
    assert session["fields"]["basket"] == {
        "path": "/basket", "rule": "counter",
        "entries": {"key": "sku", "count": "quantity", "key_type": "integer"}}
    build(session)
    assert ADMIN_TOKEN not in json.dumps(body) and "alice" not in json.dumps(body)
    _, out = await _discover(capsys, "--admin", shop_gateway.admin_url)
    assert yaml.safe_load(out)["session"] == session
    assert f"Sampled by the gateway at {shop_gateway.admin_url}" in out
