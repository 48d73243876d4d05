"""The forward stage (gateway/pipeline/forward.py), driven through the real pipeline: every
fallback rule of ``gateway.routing.fallback``, the retry budget, the legacy retry on
another node, and exactly one outcome report per attempt on new (its breaker, its
instance, the error count) -- a streamed answer's when it ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.edge.http import Abort
from gateway.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamTimeout,
)
from gateway.routing.breaker import State
from testkit.fakes import Reply as Answer
from tests.support.memory_gateway import (
    NEW,
    Body,
    MemoryGateway,
    cookie,
    memory_gateway,
    request,
    route,
    set_cookies,
    side,
    title,
)

CATALOG = "/api/products"
MIGRATED = (route("catalog", stage="new"), route("cart", stage="new"),
            route("checkout", stage="new"))
"""catalog takes GET and HEAD; cart any method (no shared idempotency store); checkout
POST, with ``shared_idempotency_store: true`` in config.yaml."""


def fail_new(gw: MemoryGateway, failure: type[UpstreamError] | int) -> None:
    """Whichever new instance is asked next fails so."""
    for n in NEW:
        gw.backends[n].fail_next(1, failure)


def fallbacks(gw: MemoryGateway, route: str, reason: str, *, refused: bool = False) -> float:
    name = "strangler_fallbacks_refused_total" if refused else "strangler_fallbacks_total"
    return gw.count(name, route=route, reason=reason)


@pytest.mark.parametrize(("failure", "reason"), [
    (UpstreamConnectError, "new_connect"), (UpstreamReset, "new_reset"),
    (UpstreamTimeout, "new_timeout"), (UpstreamProtocolError, "new_protocol"),
    (503, "new_5xx"),
])
async def test_a_get_that_fails_on_new_gets_legacy_s_answer(
        tmp_path: Path, failure: type[UpstreamError] | int, reason: str) -> None:
    async with memory_gateway(tmp_path, *MIGRATED) as gw:
        fail_new(gw, failure)
        reply = await gw.send(request("GET", CATALOG))
        assert side(reply) == "legacy"
        assert len(gw.received(*NEW)) == 1
        assert fallbacks(gw, "catalog", reason) == 1
        assert gw.count("strangler_backend_decisions_total", route="catalog",
                        backend="legacy", reason=f"fallback:{reason}") == 1


async def test_a_write_new_never_got_falls_back_with_its_body(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, *MIGRATED) as gw:
        fail_new(gw, UpstreamConnectError)
        reply = await gw.send(request("POST", "/api/cart", body=b"sku=1"))
        assert side(reply) == "legacy"
        assert [r.body for r in gw.received("a", "b")] == [b"sku=1"]
        assert fallbacks(gw, "cart", "new_connect_never_reached") == 1


@pytest.mark.parametrize(("target", "headers", "why"), [
    ("/api/cart", [], "write_may_have_reached_new"),
    ("/api/cart", [("Idempotency-Key", "k1")], "idempotency_store_not_shared"),
    # a key the client names in Connection is stripped: it protects nothing
    ("/api/checkout", [("Idempotency-Key", "k1"), ("Connection", "Idempotency-Key")],
     "write_may_have_reached_new"),
])
async def test_a_write_new_may_have_done_is_not_repeated_on_legacy(
        tmp_path: Path, target: str, headers: list[tuple[str, str]], why: str) -> None:
    async with memory_gateway(tmp_path, *MIGRATED) as gw:
        fail_new(gw, UpstreamReset)
        reply = await gw.send(request("POST", target, headers, body=b"sku=1"))
        assert (reply.status, title(reply)) == (502, "bad_gateway")
        assert gw.received("a", "b") == []
        assert fallbacks(gw, target.rsplit("/", 1)[1], why, refused=True) == 1


async def test_a_keyed_write_falls_back_where_legacy_shares_the_idempotency_store(
        tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, *MIGRATED) as gw:
        fail_new(gw, UpstreamReset)
        reply = await gw.send(request("POST", "/api/checkout", [("Idempotency-Key", "k1")],
                                      body=b"order"))
        assert side(reply) == "legacy"
        [sent] = gw.received("a", "b")
        assert (sent.headers["Idempotency-Key"], sent.body) == ("k1", b"order")
        assert fallbacks(gw, "checkout", "new_reset_idempotency_key") == 1


async def test_a_write_new_answered_with_a_5xx_gets_that_answer(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, *MIGRATED) as gw:
        fail_new(gw, 500)
        reply = await gw.send(request("POST", "/api/cart", body=b"sku=1"))
        assert (reply.status, reply.body) == (500, b"scripted failure")
        assert gw.received("a", "b") == []


@pytest.mark.parametrize("failure", [UpstreamConnectError, UpstreamTimeout, 503])
async def test_a_complete_route_never_falls_back(
        tmp_path: Path, failure: type[UpstreamError] | int) -> None:
    async with memory_gateway(tmp_path, route("catalog", stage="complete")) as gw:
        fail_new(gw, failure)
        reply = await gw.send(request("GET", CATALOG))
        if isinstance(failure, int):
            assert (reply.status, reply.body) == (503, b"scripted failure"), "new's own answer"
        else:
            assert (reply.status, title(reply)) == (failure.status, failure.code)
        assert gw.received("a", "b") == []
        assert fallbacks(gw, "catalog", "route_complete", refused=True) == 1


async def test_a_spent_retry_budget_refuses_the_fallback(tmp_path: Path) -> None:
    budget = route("catalog", stage="new", retry_budget={"ratio": 0, "min_retries": 1})
    async with memory_gateway(tmp_path, budget) as gw:
        fail_new(gw, UpstreamReset)
        assert side(await gw.send(request("GET", CATALOG))) == "legacy"
        fail_new(gw, UpstreamReset)
        reply = await gw.send(request("GET", CATALOG))
        assert (reply.status, title(reply)) == (502, "bad_gateway")
        assert len(gw.received("a", "b")) == 1
        assert fallbacks(gw, "catalog", "retry_budget_exhausted", refused=True) == 1


async def test_a_legacy_node_that_refuses_is_skipped_once(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path) as gw:
        gw.backends["a"].fail_next()
        reply = await gw.send(request("GET", "/api/cart", [cookie(strangler_aff="a")]))
        assert (reply.status, reply.body) == (200, b"b")
        assert set_cookies(reply)["strangler_aff"].startswith("b;")
        assert not gw.parts.held.legacy.members["a"].healthy
        assert [len(gw.received(n)) for n in ("a", "b")] == [1, 1]


async def test_a_second_legacy_refusal_is_502(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path) as gw:
        for node in ("a", "b"):
            gw.backends[node].fail_next(2)
        reply = await gw.send(request("GET", "/api/cart"))
        assert (reply.status, title(reply)) == (502, "bad_gateway")
        assert [len(gw.received(n)) for n in ("a", "b")] == [1, 1]


async def test_a_streamed_body_is_not_sent_twice(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path) as gw:
        gw.backends["a"].fail_next()
        reply = await gw.send(request("POST", "/api/cart", [
            ("Transfer-Encoding", "chunked"), cookie(strangler_aff="a")], body=Body(b"x")))
        assert (reply.status, title(reply)) == (502, "bad_gateway")
        assert gw.received("b") == []


def guarded(gw: MemoryGateway) -> MemoryGateway:
    """One instance left (n1), so every attempt goes to it."""
    gw.parts.held.new.mark_down("n2", "the test takes it out")
    return gw


GUARDS = (route("catalog", stage="new", breaker={"failures": 2}),
          lambda d: d["new"].update(ejection={"consecutive_failures": 2}))
"""Two failures in a row open the breaker and eject the instance: a failure reported
twice would do either at once."""


@pytest.mark.parametrize("failure", [UpstreamConnectError, UpstreamReset, 502])
async def test_a_failed_attempt_on_new_is_reported_once(
        tmp_path: Path, failure: type[UpstreamError] | int) -> None:
    kind = "5xx" if isinstance(failure, int) else failure.kind
    async with memory_gateway(tmp_path, *GUARDS) as gw:
        n1 = guarded(gw).parts.held.new.members["n1"]
        gw.backends["n1"].fail_next(1, failure)
        assert side(await gw.send(request("GET", CATALOG))) == "legacy"
        assert len(gw.received("n1")) == 1
        assert (n1.failures, n1.ejections) == (1, 0)
        assert gw.parts.breakers["catalog"].state is State.CLOSED
        assert gw.count("strangler_upstream_errors_total", backend="new", kind=kind) == 1


async def test_a_successful_attempt_is_reported_too(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, *GUARDS) as gw:
        n1 = guarded(gw).parts.held.new.members["n1"]
        gw.backends["n1"].script(Answer(503), Answer(200, b"ok"), Answer(503))
        for body in (b"a", b"ok", b"a"):  # a: the legacy node that took the fallback
            assert (await gw.send(request("GET", CATALOG, [cookie(strangler_aff="a")]))
                    ).body == body
        assert (n1.failures, n1.ejections) == (1, 0), "the success reset the count"
        assert gw.parts.breakers["catalog"].state is State.CLOSED


async def test_a_streamed_answer_cut_short_is_reported_when_it_breaks(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, *GUARDS) as gw:
        n1 = guarded(gw).parts.held.new.members["n1"]
        gw.backends["n1"].script(Answer.stream([b"ab", b"cd"], cut=UpstreamReset))
        reply = await gw.send(request("GET", CATALOG))
        assert reply.status == 200 and reply.stream is not None
        assert n1.failures == 0, "nothing known before it ends"
        assert gw.count("strangler_upstream_errors_total", backend="new", kind="reset") == 0
        with pytest.raises(Abort):
            async for _ in reply.stream:
                pass
        assert n1.failures == 1
        assert gw.count("strangler_upstream_errors_total", backend="new", kind="reset") == 1


async def test_a_streamed_answer_that_arrives_whole_is_a_success_at_its_end(
        tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, *GUARDS) as gw:
        n1 = guarded(gw).parts.held.new.members["n1"]
        gw.backends["n1"].script(Answer(503), Answer.stream([b"ab", b"cd"]))
        assert side(await gw.send(request("GET", CATALOG))) == "legacy"
        reply = await gw.send(request("GET", CATALOG))
        assert n1.failures == 1 and reply.stream is not None
        assert b"".join([c async for c in reply.stream]) == b"abcd"
        assert n1.failures == 0
        assert gw.count("strangler_upstream_errors_total", backend="new", kind="5xx") == 1
