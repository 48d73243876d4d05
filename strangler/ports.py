"""Loopback ports for local stacks: is one free, and a free one to use."""

from __future__ import annotations

import random
import socket

_LOW, _HIGH = 20000, 32000
_issued: set[int] = set()


def port_free(host: str, port: int) -> bool:
    """Nothing listens on ``host:port`` (a bind would succeed)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port that was free a moment ago, chosen BELOW the kernel's
    ephemeral range (32768+): outgoing connections take their local ports from
    that range, so a port we pick there could be taken by any client socket
    between now and the bind. Here, only another local stack could race us, and
    the random choice makes that unlikely. Within one process a port is never
    handed out twice (two picks before either is bound would otherwise collide)."""
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
