"""The export hook's answers as the gateway reads them: a session the node cannot put
into JSON (a 422 from the Django and Flask kits) is unfit, left to its node, not a
protocol error that would count against the node."""

from __future__ import annotations

import json

import pytest

from adapters.profile import SessionUnfit
from gateway.errors import UpstreamProtocolError
from gateway.session.hook import LegacyHook
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
