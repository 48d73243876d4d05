"""The gateway's session sampler: bounded, cheap, and fed only by exports already made."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from adapters.profile import SessionUnfit
from gateway.session.hook import LegacyHook
from gateway.session.sampler import SamplerLimits, SessionSampler
from gateway.upstream.forward import Outgoing, UpstreamResult
from tests.support.profiles import shop_profile


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def data(uid: int, qty: int = 1) -> dict[str, Any]:
    return {"uid": uid, "uname": "x", "basket": [{"sku": 1, "quantity": qty}],
            "settled_orders": [], "csrf": "tok"}


async def test_one_sample_per_session_per_interval_and_then_its_changes_show() -> None:
    clock = Clock()
    sampler = SessionSampler(SamplerLimits(share=1.0, per_session_s=10), clock)
    sampler.offer("s1", data(1, 1), 100)
    clock.now += 5
    sampler.offer("s1", data(1, 2), 100)  # too soon: not taken
    clock.now += 5
    sampler.offer("s1", data(1, 3), 100)
    assert sampler.taken == 2
    summary = await sampler.summary()
    basket = summary.get(("basket",))
    assert basket is not None and (basket.samples, basket.repeats, basket.changes) == (2, 1, 1)
    assert summary.first_at == 1_000.0 and summary.last_at == 1_010.0


async def test_caps_on_sessions_samples_and_waiting_bytes() -> None:
    clock = Clock()
    sampler = SessionSampler(SamplerLimits(share=1.0, per_session_s=0, max_sessions=2,
                                           max_samples=5, max_pending_bytes=250), clock)
    for sid in ("a", "b", "c"):
        sampler.offer(sid, data(1), 100)
    assert sampler.taken == 2  # "c" is a third session
    sampler.offer("a", data(1), 100)
    assert sampler.dropped == 1  # 300 bytes would wait: dropped
    await sampler.summary()  # folded: nothing waits any more
    for _ in range(5):
        sampler.offer("a", data(1), 100)
        await asyncio.sleep(0)  # folded soon after, so little waits
    assert sampler.taken == 5 and sampler.status()["full"]


async def test_a_share_picks_sessions_by_id_and_zero_turns_it_off() -> None:
    off = SessionSampler(SamplerLimits(share=0.0))
    for i in range(200):
        off.offer(f"s{i}", data(i), 10)
    assert off.taken == 0
    some = SessionSampler(SamplerLimits(share=0.5, per_session_s=0))
    for i in range(400):
        some.offer(f"s{i}", data(i), 10)
    first = some.taken
    assert 100 < first < 300
    for i in range(400):  # the same sessions again: the same ones are taken
        some.offer(f"s{i}", data(i), 10)
    assert some.taken == 2 * first


async def test_samples_are_folded_soon_after_without_anyone_asking() -> None:
    sampler = SessionSampler(SamplerLimits(share=1.0))
    sampler.offer("s1", data(1), 10)
    assert sampler.status()["pending"] == 1
    await asyncio.sleep(0)
    assert sampler.status()["pending"] == 0 and sampler.shapes.samples == 1


class OneAnswer:
    """An upstream whose hook answers one export; it records what it was sent."""

    id = "a"

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = json.dumps(body).encode()
        self.sent: list[Outgoing] = []

    async def send(self, request: Outgoing) -> UpstreamResult:
        self.sent.append(request)
        headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
        return UpstreamResult(self.id, 200, headers, self.body)


async def test_the_hook_shows_each_export_it_read_also_one_the_profile_finds_unfit() -> None:
    seen: list[tuple[str, Any, int]] = []
    hook = LegacyHook("t", shop_profile(), lambda sid, d, size: seen.append((sid, d, size)))
    node = OneAnswer({"session_id": "s1", "revision": 3, "node": "a", "data": data(7)})
    exported = await hook.export(node, "s1", "rid", fence=5)
    assert exported is not None and seen == [("s1", data(7), len(node.body))]
    unfit = OneAnswer({"session_id": "s2", "revision": 1, "node": "a",
                       "data": {"uid": "not-an-int"}})
    with pytest.raises(SessionUnfit):
        await hook.export(unfit, "s2", "rid")
    assert seen[-1] == ("s2", {"uid": "not-an-int"}, len(unfit.body))
