"""Ports and waiting: never assume a port is free, never sleep and hope."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


_LOW, _HIGH = 20000, 32000
_issued: set[int] = set()


def free_port() -> int:
    """A loopback port that was free a moment ago, chosen BELOW the kernel's
    ephemeral range (32768+): outgoing connections take their local ports from
    that range, so a port we pick there could be taken by any client socket
    between now and the bind. Here, only another test could race us, and the
    random choice makes that unlikely. Within one process a port is never handed
    out twice (two picks before either is bound would otherwise collide)."""
    for _ in range(200):
        port = random.randrange(_LOW, _HIGH)
        if port in _issued:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _issued.add(port)
        return port
    raise RuntimeError(f"no free port found in {_LOW}..{_HIGH}")


def wait_until(predicate: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02,
               what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the condition may not be checkable yet
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}") from last_exc


async def await_until(predicate: Callable[[], Awaitable[T]], *, timeout: float = 10.0,
                      interval: float = 0.02, what: str = "condition") -> T:
    """Async twin of :func:`wait_until`."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = await predicate()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        await asyncio.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}") from last_exc


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0
