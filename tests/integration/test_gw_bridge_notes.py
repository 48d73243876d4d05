"""The session bridge against a monolith shaped nothing like the shop.

Two nodes of the notes app (tests/apps/notes: cookie ``sessionid``, string user
ids, prefs/tags/visits/draft in the session, keys of its own nobody declares)
run in-process on loopback; the bridge talks to them through their export hook
and to the real Redis, with the notes profile (tests/support/profiles.py) and
nothing else about the app. New-side writes are made as docs/protocol.md says a
service makes them: the shared document edited and compared-and-set through the
documented script.
"""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from adapters.handles import session_handle
from adapters.store import WRITE_SCRIPT, write_args
from gateway.observe.metrics import Metrics
from gateway.session.bridge import LegacyPlan, SessionBridge, SessionUnbridgeable
from gateway.session.hook import LegacyHook
from gateway.session.store import SessionStore
from gateway.session.tokens import TokenMinter
from gateway.settings import TokensSection
from gateway.upstream.client import ClientLimits, Clients, HttpUpstream
from gateway.upstream.pools import LegacyPool
from tests.apps.notes.app import create_app
from tests.apps.notes.settings import Settings
from tests.support.keys import SESSION_KEY, KeyPair
from tests.support.profiles import notes_profile

NOTES = notes_profile()
OWN_KEYS = ("_csrf", "created_at", "history", "flash")
"""The app's own keys, declared by no profile field."""


@dataclass
class World:
    bridge: SessionBridge
    pool: LegacyPool
    metrics: Metrics
    store: SessionStore
    redis: aioredis.Redis
    servers: dict[str, TestServer]
    http: aiohttp.ClientSession
    prefix: str
    token: str

    def url(self, node: str) -> str:
        return str(self.servers[node].make_url("")).rstrip("/")

    async def login(self, node: str, username: str = "ann") -> str:
        async with self.http.post(f"{self.url(node)}/login",
                                  json={"username": username, "password": f"{username}-pass"}) as r:
            assert r.status == 200, await r.text()
            return r.cookies["sessionid"].value

    async def on(self, node: str, method: str, path: str, sid: str | None,
                 body: object = None) -> tuple[int, Any, CIMultiDict[str]]:
        cookies = {"sessionid": sid} if sid else None
        async with self.http.request(method, self.url(node) + path, json=body,
                                     cookies=cookies) as r:
            return r.status, await r.json(), CIMultiDict(r.headers)

    async def write(self, node: str, method: str, path: str, sid: str | None,
                    body: object = None) -> CIMultiDict[str]:
        status, answer, headers = await self.on(node, method, path, sid, body)
        assert status == 200, (method, path, status, answer)
        return headers

    async def state(self, node: str, sid: str) -> dict[str, Any]:
        status, body, _ = await self.on(node, "GET", "/api/state", sid)
        assert status == 200, body
        return {k: body[k] for k in ("prefs", "tags", "visits", "draft")}

    async def export(self, node: str, sid: str) -> dict[str, Any]:
        async with self.http.get(f"{self.url(node)}/_internal/sessions/{sid}",
                                 headers={"X-Internal-Token": self.token}) as r:
            assert r.status == 200, await r.text()
            body: dict[str, Any] = json.loads(await r.read())
            return body

    async def record(self, sid: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.store.key(sid))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def doc(self, sid: str) -> dict[str, Any]:
        rec = await self.record(sid)
        assert "doc" in rec, f"no shared document for the session: {rec}"
        document: dict[str, Any] = json.loads(rec["doc"])
        return document

    async def new_writes(self, sid: str, change: Callable[[dict[str, Any]], None]) -> None:
        """A new service's write: read ``doc`` and ``v``, change the document, CAS it."""
        script = self.redis.register_script(WRITE_SCRIPT)
        key = self.store.key(sid)
        raw, v = await self.redis.hmget(key, ["doc", "v"])
        assert raw is not None and v is not None, "the session is not in the store"
        doc = json.loads(raw)
        change(doc)
        ok, _ = await script(keys=[key], args=write_args(
            int(v), 3600, bump=True, set_lv=False, fields={"doc": json.dumps(doc)}))
        assert ok == 1

    async def legacy_request(self, node: str, sid: str, method: str, path: str,
                             body: object = None) -> LegacyPlan:
        """One request to legacy through the bridge, as the pipeline makes it."""
        plan = await self.bridge.before_legacy(sid, node, "t", safe=method == "GET")
        assert plan.member.id == node and not plan.unfit
        status, answer, headers = await self.on(node, method, path, sid, body)
        assert status == 200, answer
        after = await self.bridge.after_legacy(plan, status, method, headers, "t")
        assert after.error is None and not after.retry
        return plan

    def conflicts(self, field: str) -> float:
        value: float = self.metrics.merge_conflicts.labels(field)._value.get()
        return value


@pytest.fixture
async def world(redis_url: str, key_prefix: str, internal_token: str,
                keypair: KeyPair) -> AsyncIterator[World]:
    servers = {}
    for node in ("a", "b"):
        servers[node] = TestServer(create_app(Settings(node_id=node,
                                                       internal_token=internal_token)),
                                   host="127.0.0.1")
        await servers[node].start_server()
    limits = ClientLimits(connect_s=0.5, read_s=5)
    clients = Clients()
    pool = LegacyPool("legacy", [HttpUpstream(n, str(s.make_url("")), clients, limits)
                                 for n, s in servers.items()], "/healthz")
    await pool.check_all()
    client = aioredis.Redis.from_url(redis_url)
    store = SessionStore(client, key_prefix, 3600, handle_key=SESSION_KEY)
    metrics = Metrics()
    bridge = SessionBridge(store, pool, LegacyHook(internal_token, NOTES),
                           TokenMinter(TokensSection(), keypair.private_key), metrics, NOTES)
    test_http = aiohttp.ClientSession()
    try:
        yield World(bridge, pool, metrics, store, client, servers, test_http, key_prefix,
                    internal_token)
    finally:
        await test_http.close()
        await clients.close()
        for s in servers.values():
            await s.close()
        async for key in client.scan_iter(match=f"{key_prefix}:*"):
            await client.delete(key)
        await client.aclose()


def typed(value: Any) -> Any:
    """A JSON value with every float replaced by its IEEE bits: ``1`` != ``1.0``."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return (type(value).__name__, value)
    if isinstance(value, float):
        return ("float", struct.pack(">d", value))
    if isinstance(value, list):
        return [typed(v) for v in value]
    return {k: typed(v) for k, v in value.items()}


async def test_a_session_with_a_string_user_and_keys_nobody_declared_is_bridged(
        world: World) -> None:
    sid = await world.login("a")
    await world.write("a", "PUT", "/api/prefs/theme", sid, {"value": "dark"})
    await world.write("a", "POST", "/api/tags", sid, {"tag": "work"})
    await world.bridge.before_legacy(sid, "a", "t")
    doc = await world.doc(sid)
    assert doc["user"] == {"id": "u-1001", "name": "Ann Lee", "claims": {}}
    assert doc["fields"] == {"prefs": {"theme": "dark"}, "tags": ["work"]}
    data = (await world.export("a", sid))["data"]
    assert set(doc["extra"]) == set(OWN_KEYS)
    for key in OWN_KEYS:
        assert typed(doc["extra"][key]) == typed(data[key]), key


async def test_changes_on_both_sides_merge_by_each_field_s_rule(world: World) -> None:
    sid = await world.login("a")
    for method, path, body in [("PUT", "/api/prefs/theme", {"value": "dark"}),
                               ("POST", "/api/tags", {"tag": "a"}),
                               ("POST", "/api/tags", {"tag": "b"}),
                               ("POST", "/api/visits/home", None),
                               ("PUT", "/api/draft", {"text": "first"})]:
        await world.write("a", method, path, sid, body)
    plan = await world.bridge.before_legacy(sid, "a", "t")

    def on_new(doc: dict[str, Any]) -> None:
        f = doc["fields"]
        f["prefs"]["lang"] = "en"                       # a new entry of the map
        f["tags"] = ["b", "c"]                          # removes a, adds c
        f["visits"] = {"home": 2, "docs": 1}            # +1 home, +1 docs
        doc["extra"]["flash"] = {"from": "new"}         # an undeclared key, changed on new

    await world.new_writes(sid, on_new)
    # meanwhile, on legacy: another pref, another tag, one more visit (which also
    # changes the app's own `history`), before the gateway has pushed new's write
    status, _, headers = await world.on("a", "PUT", "/api/prefs/font", sid, {"value": "serif"})
    assert status == 200
    await world.write("a", "POST", "/api/tags", sid, {"tag": "d"})
    last = await world.write("a", "POST", "/api/visits/home", sid)
    after = await world.bridge.after_legacy(plan, 200, "POST", last, "t")
    assert after.error is None and headers

    expected = {"prefs": {"theme": "dark", "lang": "en", "font": "serif"},
                "tags": ["b", "c", "d"], "visits": {"home": 3, "docs": 1}, "draft": "first"}
    doc = await world.doc(sid)
    assert {k: doc["fields"].get(k) for k in expected} == expected
    assert doc["extra"]["flash"] == {"from": "new"}, "new's undeclared change is kept"
    assert len(doc["extra"]["history"]) == 2, "legacy's undeclared change is kept too"
    for field in ("prefs", "tags", "visits", "draft", "extra", "user"):
        assert world.conflicts(field) == 0, field

    await world.bridge.before_legacy(sid, "a", "t")   # the merged document reaches the node
    assert await world.state("a", sid) == expected
    data = (await world.export("a", sid))["data"]
    assert data["flash"] == {"from": "new"}
    assert typed(data["history"]) == typed(doc["extra"]["history"])


async def test_a_value_changed_on_both_sides_goes_to_the_later_write_and_is_counted(
        world: World) -> None:
    """The reported loss: a preference written on new was reverted by a concurrent legacy
    request, silently. Now a value only one side changed is never reverted, and one both
    changed goes to the later write, with the conflict logged and counted."""
    sid = await world.login("a")
    await world.write("a", "PUT", "/api/prefs/theme", sid, {"value": "dark"})
    await world.write("a", "PUT", "/api/draft", sid, {"text": "v1"})
    plan = await world.bridge.before_legacy(sid, "a", "t")

    def on_new(doc: dict[str, Any]) -> None:
        doc["fields"]["prefs"]["theme"] = "blue"
        doc["fields"]["prefs"]["lang"] = "de"
        doc["fields"]["draft"] = "from new"
        doc["extra"]["flash"] = {"new": True}

    await world.new_writes(sid, on_new)
    await world.write("a", "PUT", "/api/prefs/theme", sid, {"value": "red"})
    await world.write("a", "PUT", "/api/debug/raw/flash", sid, {"legacy": True})
    last = await world.write("a", "PUT", "/api/draft", sid, {"text": "from legacy"})
    await world.bridge.after_legacy(plan, 200, "PUT", last, "t")

    fields = (await world.doc(sid))["fields"]
    assert fields["prefs"] == {"theme": "red", "lang": "de"}, "lang: only new changed it"
    assert fields["draft"] == "from legacy"
    assert (await world.doc(sid))["extra"]["flash"] == {"legacy": True}
    assert world.conflicts("prefs") == 1
    assert world.conflicts("draft") == 1
    assert world.conflicts("extra") == 1
    await world.bridge.before_legacy(sid, "a", "t")
    assert (await world.state("a", sid))["prefs"] == {"theme": "red", "lang": "de"}


async def test_undeclared_keys_stay_byte_identical_over_many_round_trips(world: World) -> None:
    """Through pushes, pulls and a failover to another node, the app's own keys are
    carried as typed JSON values: nothing rounded, re-typed or re-encoded."""
    sid = await world.login("a")
    tricky = {"f": [0.1, 1e-7, 1e300, 5e-324, 2**53 + 1, 2**64 + 7, 1.0, 1],
              "s": "é\u2028\U0001f600\u0000", "e": [{}, [], None, True, False]}
    await world.write("a", "PUT", "/api/debug/raw/blob", sid, tricky)
    await world.bridge.before_legacy(sid, "a", "t")
    before = {k: typed(v) for k, v in (await world.export("a", sid))["data"].items()
              if k in (*OWN_KEYS, "blob")}
    for i in range(6):
        node = "a" if i < 3 else "b"
        if i == 3:
            world.pool.mark_down("a", "test: failover")
        def visit(doc: dict[str, Any], count: int = i + 1) -> None:
            doc["fields"]["visits"] = {"home": count}

        await world.new_writes(sid, visit)
        plan = await world.bridge.before_legacy(sid, node, "t")  # pushed to that node
        assert plan.member.id == node
        await world.legacy_request(node, sid, "PUT", "/api/prefs/round", {"value": str(i)})
    data = (await world.export("b", sid))["data"]
    after = {k: typed(v) for k, v in data.items() if k in before}
    assert after == before
    assert data["visits"] == {"home": 6} and data["prefs"] == {"round": "5"}


async def test_a_guest_session_is_bridged_and_its_token_names_no_user(world: World) -> None:
    headers = await world.write("a", "POST", "/api/tags", None, {"tag": "guest-tag"})
    sid = headers["X-Notes-Session"]
    await world.bridge.before_legacy(sid, "a", "t")
    assert (await world.doc(sid))["user"] is None
    none, _ = await world.bridge.token_for_new(sid, "a", "t", audience="notes")
    assert none is None, "a route that needs a user gets no token for a guest"
    token, _ = await world.bridge.token_for_new(sid, "a", "t", audience="notes", guests=True)
    assert token is not None
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["guest"] is True and "sub" not in claims and claims["aud"] == "notes"
    assert claims["sid"] == session_handle(SESSION_KEY, sid)
    await world.new_writes(sid, lambda d: d["fields"].update(tags=["guest-tag", "more"]))
    world.pool.mark_down("a", "test: failover")
    await world.bridge.before_legacy(sid, "a", "t")  # a guest's session moves nodes too
    assert (await world.state("b", sid))["tags"] == ["guest-tag", "more"]


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("prefs", 5, "type"),                       # a declared map that is a number
    ("tags", ["x", 3], "type"),                 # a set of strings holding a number
    ("_auth_user_id", 1001, "identity"),        # a user id of the wrong type
])
async def test_a_session_that_does_not_fit_is_left_to_its_node_and_nothing_else(
        world: World, key: str, value: Any, reason: str) -> None:
    bad = await world.login("a", "bo")
    good = await world.login("a", "cy")
    await world.write("a", "PUT", f"/api/debug/raw/{key}", bad, value)
    plan = await world.bridge.before_legacy(bad, "a", "t", safe=False)
    assert plan.unfit and plan.member.id == "a"
    assert "doc" not in await world.record(bad), "nothing of it reaches the store"
    with pytest.raises(SessionUnbridgeable):
        await world.bridge.token_for_new(bad, "a", "t", audience="notes")
    reasons = ("type", "identity", "document", "not_json", "oversize", "not_object", "path")
    counted = {r: world.metrics.unbridgeable_total.labels(r)._value.get() for r in reasons}
    assert counted[reason] == 1, counted
    assert sum(counted.values()) == 1, counted

    await world.write("a", "PUT", "/api/prefs/theme", good, {"value": "dark"})
    await world.legacy_request("a", good, "GET", "/api/state")
    await world.new_writes(good, lambda d: d["fields"].update(draft="fine"))
    await world.bridge.before_legacy(good, "a", "t")
    assert (await world.state("a", good))["draft"] == "fine"


async def test_a_session_dropped_while_its_node_still_holds_it_is_bridged_again(
        world: World) -> None:
    """A drop (a logout seen, a login that replaced the id) keeps the record's ``v``. A
    node that still holds the session -- a framework that keeps the old id alive after
    a login, as PHP's ``session_regenerate_id(false)`` does -- serves it again through
    the bridge: it once got 503 'session ended' on every request, for ever."""
    sid = await world.login("a")
    await world.write("a", "PUT", "/api/prefs/theme", sid, {"value": "dark"})
    await world.bridge.before_legacy(sid, "a", "t")
    v_before = int((await world.record(sid))["v"])
    await world.bridge._drop(sid, "test", world.bridge._deadline())
    assert "doc" not in await world.record(sid)

    plan = await world.legacy_request("a", sid, "PUT", "/api/prefs/lang", {"value": "en"})
    assert plan.member.id == "a"
    doc = await world.doc(sid)
    assert doc["user"]["id"] == "u-1001"
    assert doc["fields"]["prefs"] == {"theme": "dark", "lang": "en"}
    assert int((await world.record(sid))["v"]) > v_before, "v never goes back"
    token, _ = await world.bridge.token_for_new(sid, "a", "t", audience="notes")
    assert token is not None


async def test_an_ended_session_is_never_revived_from_a_stale_copy_on_another_node(
        world: World) -> None:
    sid = await world.login("a")
    await world.bridge.before_legacy(sid, "a", "t")
    stale = (await world.export("a", sid))["data"]
    async with world.http.put(f"{world.url('b')}/_internal/sessions/{sid}",
                              json={"data": stale, "expected_revision": None},
                              headers={"X-Internal-Token": world.token}) as r:
        assert r.status == 200, await r.text()          # an old copy left on node b
    plan = await world.bridge.before_legacy(sid, "a", "t", safe=False)
    status, _, headers = await world.on("a", "POST", "/logout", sid)
    assert status == 200
    await world.bridge.after_legacy(plan, status, "POST", headers, "t")
    assert "doc" not in await world.record(sid), "the logout ended the shared session"

    again = await world.bridge.before_legacy(sid, "a", "t")
    assert again.member.id == "a" and again.lrev is None
    assert "doc" not in await world.record(sid), "b's stale copy was not pulled"
    assert await world.bridge.token_for_new(sid, "a", "t", audience="notes") == (None, None)
