"""The observe stage (gateway/pipeline/observe.py), driven through the real pipeline: every
answered request gives one ``backend_decided`` line and one count, naming its route, the
backend that answered, the decision's reason and the status the client got."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.edge.http import Incoming
from gateway.observe import log
from tests.support.memory_gateway import (
    NEW,
    RID,
    MemoryGateway,
    memory_gateway,
    request,
    route,
)

CATALOG = "/api/products"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACED = [("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01")]


@pytest.fixture
def out(capsys: pytest.CaptureFixture[str]) -> pytest.CaptureFixture[str]:
    log.reset()  # request lines on, to stdout: where the process writes them, and capsys reads
    return capsys


async def decided(out: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The ``backend_decided`` lines written since the last look. They go out at the start
    of the loop's next iteration (``gateway.observe.log``): one yield to it, no waiting."""
    await asyncio.sleep(0)
    lines = [json.loads(line) for line in out.readouterr().out.splitlines()
             if line.startswith("{")]
    return [line for line in lines if line.get("event") == "backend_decided"]


def counted(gw: MemoryGateway, route: str, backend: str, status: str, reason: str
            ) -> tuple[float, float, float]:
    """(requests, decisions, timings) counted for this answer."""
    return (gw.count("strangler_requests_total", route=route, backend=backend, status=status),
            gw.count("strangler_backend_decisions_total", route=route, backend=backend,
                     reason=reason),
            gw.count("strangler_request_duration_seconds_count", route=route,
                     backend=backend))


async def test_an_answered_request_is_one_line_and_one_count(
        tmp_path: Path, out: pytest.CaptureFixture[str]) -> None:
    async with memory_gateway(tmp_path) as gw:
        reply = await gw.send(request("GET", CATALOG, TRACED))
        [line] = await decided(out)
        node = reply.body.decode()
        assert {k: line[k] for k in ("request_id", "route", "backend", "reason", "upstream",
                                     "status", "trace_id", "level")} == {
            "request_id": RID, "route": "catalog", "backend": "legacy",
            "reason": "stage_legacy", "upstream": node, "status": 200, "trace_id": TRACE,
            "level": "info"}
        assert isinstance(line["ms"], float) and line["ms"] >= 0
        assert counted(gw, "catalog", "legacy", "200", "stage_legacy") == (1, 1, 1)


async def test_a_fallback_is_logged_and_counted_as_legacy_s_answer(
        tmp_path: Path, out: pytest.CaptureFixture[str]) -> None:
    async with memory_gateway(tmp_path, route("catalog", stage="new")) as gw:
        for n in NEW:
            gw.backends[n].fail_next(1, 503)
        reply = await gw.send(request("GET", CATALOG))
        [line] = await decided(out)
        assert (line["backend"], line["reason"], line["upstream"], line["status"]) == (
            "legacy", "fallback:new_5xx", reply.body.decode(), 200)
        assert counted(gw, "catalog", "legacy", "200", "fallback:new_5xx") == (1, 1, 1)
        assert counted(gw, "catalog", "new", "503", "stage_new") == (0, 0, 0)


async def test_new_s_own_error_is_logged_with_the_status_the_client_got(
        tmp_path: Path, out: pytest.CaptureFixture[str]) -> None:
    async with memory_gateway(tmp_path, route("catalog", stage="complete")) as gw:
        for n in NEW:
            gw.backends[n].fail_next(1, 503)
        reply = await gw.send(request("GET", CATALOG))
        [line] = await decided(out)
        assert (line["backend"], line["reason"], line["status"]) == ("new", "stage_complete",
                                                                     503)
        assert reply.status == 503 and line["upstream"] in NEW
        assert counted(gw, "catalog", "new", "503", "stage_complete") == (1, 1, 1)


async def test_each_request_has_its_own_line(tmp_path: Path,
                                             out: pytest.CaptureFixture[str]) -> None:
    async with memory_gateway(tmp_path) as gw:
        await gw.send(request("GET", CATALOG), rid="rid-first-0001")
        await gw.send(request("POST", "/api/cart"), rid="rid-second-001")
        lines = await decided(out)
        assert [(x["request_id"], x["route"]) for x in lines] == [
            ("rid-first-0001", "catalog"), ("rid-second-001", "cart")]
        assert lines[0]["trace_id"] != lines[1]["trace_id"], "a new trace for each"


@pytest.mark.parametrize("incoming", [
    request("GET", "/_internal/sessions/x"),
    request("GET", "/api/checkout"),
    request("GET", CATALOG, host=None),
], ids=["blocked", "405", "no-host"])
async def test_a_refused_request_is_neither_logged_nor_counted_here(
        tmp_path: Path, out: pytest.CaptureFixture[str], incoming: Incoming) -> None:
    """The listener's ``request_refused`` line is the one for it (gateway/runtime/app.py)."""
    async with memory_gateway(tmp_path) as gw:
        assert (await gw.send(incoming)).status >= 400
        assert await decided(out) == []
        assert gw.total("strangler_requests_total") == 0
        assert gw.total("strangler_backend_decisions_total") == 0
