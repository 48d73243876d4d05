"""strangler_sdk.sessions against a real Redis: the shared record read and written as
docs/protocol.md section 5 says (CAS, op ids, TTL, the "no session" rules), with the trips
example's profile."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.claims import Identity
from adapters.document import EMPTY, Document, Principal
from adapters.handles import session_handle
from adapters.store import WRITE_SCRIPT, session_key, write_args
from strangler_sdk.config import load_profile
from strangler_sdk.errors import NotLoggedIn
from strangler_sdk.fields import SessionData
from strangler_sdk.sessions import SharedSessions
from tests.support.keys import SESSION_KEY

ROOT = Path(__file__).resolve().parents[2]
TRIPS = load_profile(ROOT / "examples" / "django_trips" / "config.yaml")
UID = "7d0c7a7e-0000-4000-8000-000000000001"
ANN = Principal(UID, "Ann Lee", {"username": "ann"})
TTL = 3600


def sessions(client: aioredis.Redis, prefix: str, **options: Any) -> SharedSessions:
    return SharedSessions(client, prefix=prefix, ttl_s=TTL, profile=TRIPS,
                          handle_key=SESSION_KEY, **options)


async def gateway_writes(client: aioredis.Redis, prefix: str, handle: str, doc: str) -> None:
    """A record as the gateway writes one after a sync (v 1, lv 1, a legacy node)."""
    script = client.register_script(WRITE_SCRIPT)
    result = await script(keys=[session_key(prefix, handle)], args=write_args(
        0, TTL, bump=True, set_lv=True,
        fields={"doc": doc, "base": doc, "node": "a@1", "lrev": 1, "t": int(time.time())}))
    assert int(result[0]) == 1, "setup: the record was written"


async def a_session(client: aioredis.Redis, prefix: str, doc: Document) -> Identity:
    handle = "h" + "x" * 42
    await gateway_writes(client, prefix, handle, doc.to_json())
    return Identity(handle, UID, "Ann Lee", {"username": "ann"})


def views(change: str) -> Any:
    return lambda d: SessionData(d, TRIPS).count("views", change, 1).doc


async def test_concurrent_writers_lose_no_update(redis_client: aioredis.Redis, redis_url: str,
                                                 key_prefix: str) -> None:
    who = await a_session(redis_client, key_prefix, Document(ANN))
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(4)]
    writers = [sessions(c, key_prefix) for c in clients]
    try:
        await asyncio.gather(*(writers[i % 4].update(who, views("rome")) for i in range(40)))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    snap = await sessions(redis_client, key_prefix).read_owned(who)
    assert snap is not None
    assert snap.doc.fields["views"] == {"rome": 40}, "every concurrent +1 counted"
    assert snap.v == 41, "one version per write, none lost or doubled"
    assert snap.doc.user == ANN


async def test_the_same_op_id_applies_once(redis_client: aioredis.Redis,
                                           key_prefix: str) -> None:
    who = await a_session(redis_client, key_prefix, Document(ANN))
    store = sessions(redis_client, key_prefix)
    for _ in range(3):  # a first attempt, then two resends whose answers were "lost"
        doc = await store.update(who, views("oslo"), op="op-41")
    assert doc.fields["views"] == {"oslo": 1}
    await store.update(who, views("oslo"), op="op-42")
    snap = await store.read_owned(who)
    assert snap is not None and snap.doc.fields["views"] == {"oslo": 2} and snap.v == 3


async def test_a_write_keeps_extra_user_and_the_deployments_ttl(
        redis_client: aioredis.Redis, key_prefix: str) -> None:
    raw = ('{"schema":2,"user":{"id":"UID","name":"Ann Lee","claims":{"username":"ann"}},'
           '"fields":{},"extra":{"n":1.0,"big":18446744073709551617,"o":{"b":1,"a":2}}}'
           ).replace("UID", UID)
    who = await a_session(redis_client, key_prefix, Document.from_json(raw))
    await redis_client.expire(session_key(key_prefix, who.session_id), 10)
    await sessions(redis_client, key_prefix).update(
        who, lambda d: SessionData(d, TRIPS).put("prefs", "lang", "en").doc)
    key = session_key(key_prefix, who.session_id)
    stored = await redis_client.hget(key, "doc")
    assert isinstance(stored, bytes), "the record has a document"
    written = stored.decode()
    assert '"extra":{"n":1.0,"big":18446744073709551617,"o":{"b":1,"a":2}}' in written
    assert await redis_client.ttl(key) > 10, "the TTL is the deployment's, refreshed"
    assert await redis_client.hget(key, "lv") == b"1", "a service never moves lv"


async def test_no_session_for_a_missing_record_or_another_user(
        redis_client: aioredis.Redis, key_prefix: str) -> None:
    store = sessions(redis_client, key_prefix)
    nobody = Identity("m" * 43, UID)
    assert await store.read_owned(nobody) is None
    with pytest.raises(NotLoggedIn):
        await store.update(nobody, views("rome"))
    assert not await redis_client.exists(session_key(key_prefix, nobody.session_id)), \
        "an update of no session creates nothing"
    who = await a_session(redis_client, key_prefix, Document(ANN))
    other = Identity(who.session_id, "someone-else")
    assert await store.read_owned(other) is None
    with pytest.raises(NotLoggedIn):
        await store.update(other, views("rome"))


async def test_a_stale_guest_token_gets_no_session(redis_client: aioredis.Redis,
                                                   key_prefix: str) -> None:
    store = sessions(redis_client, key_prefix)
    guest = Identity("g" * 43, None)
    await gateway_writes(redis_client, key_prefix, guest.session_id, EMPTY.to_json())
    assert await store.read_owned(guest) is not None, "a guest's own session"
    await store.update(guest, lambda d: Document(ANN, d.fields, d.extra))  # a login since
    assert await store.read_owned(guest) is None, "the guest token is stale now"


@pytest.mark.parametrize("doc", ['{"schema":2,"user":null,"fields":{"views":[1]},"extra":{}}',
                                 '{"schema":3}', "not json"])
async def test_an_unreadable_document_is_no_session_and_never_overwritten(
        redis_client: aioredis.Redis, key_prefix: str, doc: str) -> None:
    store = sessions(redis_client, key_prefix)
    guest = Identity("u" * 43, None)
    await gateway_writes(redis_client, key_prefix, guest.session_id, doc)
    assert await store.read(guest.session_id) is None
    with pytest.raises(NotLoggedIn):
        await store.update(guest, lambda d: EMPTY)
    assert await redis_client.hget(session_key(key_prefix, guest.session_id), "doc") == \
        doc.encode()


async def test_a_created_session_is_named_by_its_handle(redis_client: aioredis.Redis,
                                                         key_prefix: str) -> None:
    store = sessions(redis_client, key_prefix)
    sid = await store.create(Document(ANN))
    handle = session_handle(SESSION_KEY, sid)
    snap = await store.read(handle)
    assert snap is not None and snap.v == 1 and snap.doc.user == ANN
    fields = await redis_client.hmget(session_key(key_prefix, handle),
                                      ["node", "lrev", "lv", "base"])
    assert fields == [b"", b"0", b"0", EMPTY.to_json().encode()]
    assert await store.log_out(Identity(handle, UID))
    after = await store.read(handle)
    assert after is not None and after.doc == EMPTY and after.v == 2
