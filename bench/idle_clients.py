"""Idle keep-alive clients: open connections to a proxy, one request each, then hold them.

Scenario H's memory rows read a proxy's RSS at rest and then with N idle client
connections open. The connections are held by this process (pinned to the load
core like wrk, with its own descriptor limit raised), not by the bench, which is
synchronous. Steps are driven one line each way, so the bench reads RSS only
once every connection of the step has been answered and sits idle:

    -> IDLE_JSON {"step": 1000, "open": 1000, "failed": {}, "closed": 0}
    <- any line (RSS read; open the next step, or report once more and close all)

``open`` counts connections answered 200 and still open; ``closed`` those the
proxy closed since; ``failed`` connections refused, timed out or answered
otherwise, by reason (closed at once, so not counted as open).

    python -m bench.idle_clients --url http://127.0.0.1:9000/api/cart -H 'Cookie: a=b' \\
        --steps 1000,5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
from collections import Counter
from typing import cast
from urllib.parse import urlsplit

import httptools
import uvloop

_ANSWER_S = 30.0
"""How long one connection may take to connect and be answered (the proxy is idle
otherwise, so anything near this means it is stuck)."""


class Idle(asyncio.Protocol):
    """One client connection: sends its request once, then only notices being closed."""

    __slots__ = ("answered", "closed", "parser", "request", "transport")

    def __init__(self, request: bytes, answered: asyncio.Future[int]) -> None:
        self.request, self.answered, self.closed = request, answered, False
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self.answered.done():
                self.answered.set_exception(exc)

    def on_message_complete(self) -> None:
        if not self.answered.done():
            self.answered.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.answered.done():
            self.answered.set_exception(exc or ConnectionResetError("closed before answering"))


async def open_one(host: str, port: int, request: bytes,
                   slots: asyncio.Semaphore) -> tuple[Idle | None, str]:
    """A connection answered 200 and left open, or None and why not."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[int] = loop.create_future()
    idle: Idle | None = None
    async with slots:  # a few connects at a time: the proxy's accept backlog is finite
        try:
            async with asyncio.timeout(_ANSWER_S):
                _, idle = await loop.create_connection(lambda: Idle(request, answered),
                                                       host, port)
                status = await answered
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            status, reason = 0, type(exc).__name__
        else:
            reason = f"status {status}"
    if status == 200 and idle is not None:
        return idle, ""
    if idle is not None and idle.transport is not None:
        idle.transport.close()
    return None, reason


def raise_open_files(needed: int) -> None:
    """The soft descriptor limit up to what the steps need (at most the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (needed if hard == resource.RLIM_INFINITY else min(needed, hard),
                            hard))


def report(step: int, conns: list[Idle], failed: Counter[str]) -> None:
    closed = sum(c.closed for c in conns)
    line = {"step": step, "open": len(conns) - closed, "failed": dict(failed), "closed": closed}
    print("IDLE_JSON " + json.dumps(line), flush=True)


async def run(url: str, headers: dict[str, str], steps: list[int], parallel: int) -> None:
    raise_open_files(max(steps) + 256)
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
             f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    slots = asyncio.Semaphore(parallel)
    conns: list[Idle] = []
    failed: Counter[str] = Counter()
    opened = 0
    loop = asyncio.get_running_loop()
    for step in steps:
        results = await asyncio.gather(*(open_one(host, port, request, slots)
                                         for _ in range(step - opened)))
        opened = step
        conns += [c for c, _ in results if c is not None]
        failed.update(reason for c, reason in results if c is None)
        report(step, conns, failed)
        await loop.run_in_executor(None, sys.stdin.readline)
    report(steps[-1], conns, failed)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("-H", "--header", action="append", default=[])
    parser.add_argument("--steps", required=True,
                        help="cumulative connection counts, comma-separated, ascending")
    parser.add_argument("--parallel", type=int, default=64,
                        help="connections being opened at once")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    if steps != sorted(steps) or steps[0] <= 0:
        parser.error("--steps must be positive and ascending")
    headers = dict(h.split(": ", 1) for h in args.header)
    uvloop.run(run(args.url, headers, steps, args.parallel))


if __name__ == "__main__":
    main()
