"""The export hook's answers as the gateway reads them: a session the node cannot put
into JSON (a 422 from the Django and Flask kits) is unfit, left to its node, not a
protocol error that would count against the node."""

from __future__ import annotations

import json

import pytest

from adapters.profile import SessionUnfit
from gateway.errors import UpstreamProtocolError
from gateway.session.hook import LegacyHook
from gateway.upstream.pools import LegacyPool
from testkit.fakes.upstream import MemoryUpstream, Reply
from tests.support.profiles import shop_profile


async def test_a_422_export_is_a_session_json_cannot_carry() -> None:
    node = MemoryUpstream("a")
    node.script(Reply(422, json.dumps({"error": "not_json", "detail": "a datetime"}).encode()))
    with pytest.raises(SessionUnfit) as caught:
        await LegacyHook("t", shop_profile()).export(node, "sid-1", "rid")
    assert caught.value.reason == "not_json"


@pytest.mark.parametrize("status", [400, 500, 503])
async def test_other_refusals_stay_protocol_errors(status: int) -> None:
    node = MemoryUpstream("a")
    node.script(Reply(status, b'{"error": "x"}'))
    with pytest.raises(UpstreamProtocolError):
        await LegacyHook("t", shop_profile()).export(node, "sid-1", "rid")


# A framework that sends its answers chunked (gunicorn under Django or Flask does) may
# have its body still arriving when the head is read: the hook and the health check read
# it whole. They once took such an export for "not JSON" and every Django session stayed
# on legacy, and left each chunked health answer's connection unreleased.
EXPORT = {"session_id": "sid-1", "revision": 3, "node": "a",
          "data": {"uid": 7, "uname": "ann", "basket": [], "csrf": "x"}}


def _chunked(payload: object, pieces: int = 3) -> Reply:
    raw = json.dumps(payload).encode()
    step = len(raw) // pieces + 1
    return Reply(200, chunks=tuple(raw[i:i + step] for i in range(0, len(raw), step)))


async def test_a_chunked_export_is_read_whole_and_its_stream_released() -> None:
    node = MemoryUpstream("a")
    node.script(_chunked(EXPORT))
    exported = await LegacyHook("t", shop_profile()).export(node, "sid-1", "rid")
    assert exported is not None and exported.revision == 3
    assert exported.doc.user is not None and exported.doc.user.id == 7
    assert node.streams and all(s.released for s in node.streams)


async def test_a_chunked_export_over_the_limit_is_oversize_and_not_read_to_its_end() -> None:
    big = dict(EXPORT, data=dict(EXPORT["data"], csrf="x" * 300_000))  # type: ignore[arg-type]
    node = MemoryUpstream("a")
    node.script(_chunked(big, pieces=40))
    with pytest.raises(SessionUnfit) as caught:
        await LegacyHook("t", shop_profile()).export(node, "sid-1", "rid")
    assert caught.value.reason == "oversize"
    assert node.streams and all(s.released for s in node.streams)


async def test_a_chunked_health_answer_gives_its_boot_id_and_frees_the_connection() -> None:
    node = MemoryUpstream("a")
    node.script(_chunked({"status": "ok", "boot_id": "boot-7"}))
    pool = LegacyPool("legacy", [node], "/healthz")
    await pool.check_all()
    assert pool.members["a"].boot_id == "boot-7"
    assert node.streams and all(s.released for s in node.streams)
