"""The route stage (gateway/pipeline/route.py), driven through the real pipeline: a path a
route owns with a method it does not take is 405 naming the methods it does; a path no
route owns is 404 -- and neither reaches a backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.memory_gateway import memory_gateway, request, title


def no_catch_all(data: dict[str, Any]) -> None:
    data["routes"] = [r for r in data["routes"] if r["name"] != "default"]


@pytest.mark.parametrize(("method", "target", "allow"), [
    ("GET", "/api/checkout", "POST"),
    ("DELETE", "/api/products/7", "GET, HEAD"),
    ("POST", "/api/orders", "GET, HEAD"),
    ("GET", "/api/cart/../checkout", "POST"),  # the canonical path's route decides
])
async def test_a_method_the_route_does_not_take_is_405_with_allow(
        tmp_path: Path, method: str, target: str, allow: str) -> None:
    async with memory_gateway(tmp_path) as gw:
        reply = await gw.send(request(method, target))
        assert (reply.status, title(reply)) == (405, "method_not_allowed")
        assert reply.headers.getall("Allow") == [allow]
        assert gw.received() == []


async def test_a_method_the_route_takes_is_served(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path) as gw:
        assert (await gw.send(request("HEAD", "/api/products/7"))).status == 200
        assert (await gw.send(request("POST", "/api/checkout"))).status == 200
        assert sorted((r.method, r.target) for r in gw.received()) == [
            ("HEAD", "/api/products/7"), ("POST", "/api/checkout")]


async def test_a_path_no_route_owns_is_404(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path, no_catch_all) as gw:
        for method in ("GET", "POST"):
            reply = await gw.send(request(method, "/nowhere"))
            assert (reply.status, title(reply)) == (404, "no_route")
        assert "Allow" not in reply.headers
        assert gw.received() == []


async def test_the_catch_all_route_takes_what_no_other_route_owns(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path) as gw:
        reply = await gw.send(request("PATCH", "/nowhere"))
        assert reply.status == 200
        assert [r.target for r in gw.received()] == ["/nowhere"]
        assert gw.count("strangler_backend_decisions_total", route="default", backend="legacy",
                        reason="legacy_only") == 1
