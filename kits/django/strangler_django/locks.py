"""Per-session locks in process memory: a fixed set of locks, a session id picks one.

Striped rather than one lock per id, so memory stays bounded whatever ids
arrive; two ids sharing a stripe only wait for each other briefly. They order
the hook's read-check-write steps and the middleware's read-bump-save among
the threads of one process; they do nothing across processes (README.md,
caveats). Nothing waits for ever: past ``WAIT_S`` a caller gets ``Busy``.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STRIPES = 64
WAIT_S = 10.0
_LOCKS = tuple(threading.Lock() for _ in range(STRIPES))


class Busy(Exception):
    """The session's lock was not free within ``WAIT_S`` seconds."""


def _lock(sid: str) -> threading.Lock:
    return _LOCKS[zlib.crc32(sid.encode("utf-8", "surrogatepass")) % STRIPES]


@contextmanager
def held(sid: str) -> Iterator[None]:
    """Hold ``sid``'s lock for the block, or raise ``Busy``."""
    lock = _lock(sid)
    if not lock.acquire(timeout=WAIT_S):
        raise Busy(sid)
    try:
        yield
    finally:
        lock.release()


def take(sid: str) -> Callable[[], None]:
    """Acquire ``sid``'s lock (or raise ``Busy``) and return its release, safe to call twice:
    for a hold that ends in another piece of code than the one that began it."""
    lock = _lock(sid)
    if not lock.acquire(timeout=WAIT_S):
        raise Busy(sid)
    released = False
    guard = threading.Lock()

    def release() -> None:
        nonlocal released
        with guard:
            if not released:
                released = True
                lock.release()

    return release
