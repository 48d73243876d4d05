"""Session ids as real frameworks make them reach the monolith's hook intact: Java's
``ABC123.node1``, PHP's comma lists, URL-encoded values with ``/``, ``%`` and ``+``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from adapters.document import Document, Principal
from adapters.handles import valid_cookie_id
from gateway.session.hook import LegacyHook
from gateway.upstream.client import ClientLimits, Clients, HttpUpstream
from tests.support.flawed_hook import hook_app
from tests.support.profiles import notes_profile

TOKEN = "hook-ids-token"
IDS = ["8F2C1E0A9B7D6C5E4F3A2B1C0D9E8F7A.node1", "a1,b2-c3d4e5f6", "YWxp%2Fce+b/x?y#z",
       "s" * 4096, "~!$&'()*+-./:<=>?@[]^_`|"]


@pytest.fixture
async def node() -> AsyncIterator[HttpUpstream]:
    server = TestServer(hook_app(None, TOKEN), host="127.0.0.1")
    await server.start_server()
    limits = ClientLimits(connect_s=1, read_s=5)
    clients = Clients()
    yield HttpUpstream("x1", str(server.make_url("")).rstrip("/"), clients, limits)
    await clients.close()
    await server.close()


@pytest.mark.parametrize("sid", IDS)
async def test_an_id_of_any_framework_names_its_own_session(node: HttpUpstream, sid: str) -> None:
    assert valid_cookie_id(sid)
    hook = LegacyHook(TOKEN, notes_profile())
    doc = Document(Principal("u-1", "Ann"), {"draft": sid[:20]})
    done = await hook.import_(node, sid, doc, None, "rid")
    assert done.ok and done.revision == 1
    exported = await hook.export(node, sid, "rid")
    assert exported is not None and exported.doc == doc, "one id, one session, whole"
    assert await hook.export(node, sid + "x", "rid") is None


@pytest.mark.parametrize("bad", ["", "a b", 'a"b', "a;b", "a\\b", "\x00", "é", "s" * 4097,
                                 "{x}"])
def test_what_cannot_be_a_cookie_value_is_no_session(bad: str) -> None:
    assert not valid_cookie_id(bad)
