"""The delay proxy a --stack rehearsal puts in front of each new instance (loopback only)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from strangler.ports import free_port
from strangler.rehearse.faults import DelayProxy


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[DelayProxy, str]]:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"n": request.query.get("n")})

    app = web.Application()
    app.router.add_get("/", hello)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    proxy = DelayProxy(free_port(), server.port or 0)
    await proxy.start()
    yield proxy, f"http://127.0.0.1:{proxy.port}/"
    await proxy.close()
    await server.close()


async def _get(http: aiohttp.ClientSession, url: str, n: int) -> tuple[float, object]:
    started = time.monotonic()
    async with http.get(url, params={"n": str(n)}) as resp:
        body = await resp.json()
    return time.monotonic() - started, body


async def test_relays_unchanged_and_adds_the_delay_it_is_set_to(
        proxied: tuple[DelayProxy, str]) -> None:
    proxy, url = proxied
    async with aiohttp.ClientSession() as http:
        _, body = await _get(http, url, 1)
        assert body == {"n": "1"}
        proxy.set_delay(300)
        took, body = await _get(http, url, 2)  # the same pooled connection
        assert body == {"n": "2"}
        assert took >= 0.3
        # pipelined, not stacked: three requests at once each wait one delay
        started = time.monotonic()
        replies = await asyncio.gather(*(_get(http, url, n) for n in (3, 4, 5)))
        assert [b for _, b in replies] == [{"n": "3"}, {"n": "4"}, {"n": "5"}]
        assert min(t for t, _ in replies) >= 0.3
        assert time.monotonic() - started >= 0.3
        proxy.set_delay(0)
        _, body = await _get(http, url, 6)
        assert body == {"n": "6"}


async def test_a_stopped_instance_refuses_connections_until_it_is_back(
        proxied: tuple[DelayProxy, str]) -> None:
    proxy, url = proxied
    async with aiohttp.ClientSession() as http:
        await _get(http, url, 1)
        await proxy.stop_listening()
        with pytest.raises(aiohttp.ClientConnectionError):
            await _get(http, url, 2)
        await proxy.start()
        _, body = await _get(http, url, 3)
        assert body == {"n": "3"}
