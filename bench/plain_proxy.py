"""The honest baseline: a plain aiohttp reverse proxy, nothing else.

One pooled keep-alive ``ClientSession``; the upstream body is read whole and
returned; status and headers are copied minus hop-by-hop ones. aiohttp at its
leanest (low-level ``web.Server``, uvloop, no access log, no decompression):
what a careful Python proxy on a mainstream framework costs. The gateway's own
listener and client are not aiohttp's (issue 13); ``bench.lean_proxy`` is the
floor on the same parts as the gateway's.

    python -m bench.plain_proxy --upstream http://127.0.0.1:8101 --port 9000
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from bench.hop import HOP_BY_HOP

_DROP_REQUEST = HOP_BY_HOP | {"host", "content-length"}
_DROP_RESPONSE = HOP_BY_HOP | {"content-length"}


def make_handler(upstream: str, http: aiohttp.ClientSession) -> web.Server:
    async def handle(request: web.BaseRequest) -> web.Response:
        headers = CIMultiDict((k, v) for k, v in request.headers.items()
                              if k.lower() not in _DROP_REQUEST)
        body = await request.read() if request.body_exists else None
        async with http.request(request.method, upstream + request.raw_path, headers=headers,
                                data=body, allow_redirects=False) as resp:
            payload = await resp.read()
            out = CIMultiDict((k, v) for k, v in resp.headers.items()
                              if k.lower() not in _DROP_RESPONSE)
            return web.Response(status=resp.status, headers=out, body=payload)

    return web.Server(handle, access_log=None, auto_decompress=False)


async def serve(upstream: str, host: str, port: int) -> None:
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
        auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"))
    runner = web.ServerRunner(make_handler(upstream.rstrip("/"), http))
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await http.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop  # the gateway runs on uvloop too (strangler.cli._run)
    except ImportError:
        asyncio.run(serve(args.upstream, args.host, args.port))
    else:
        uvloop.run(serve(args.upstream, args.host, args.port))


if __name__ == "__main__":
    main()
