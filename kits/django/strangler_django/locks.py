"""Per-session locks in process memory: a fixed set of locks, a session id picks one.

Striped rather than one lock per id, so memory stays bounded whatever ids
arrive; two ids sharing a stripe only wait for each other briefly. They order
the hook's read-check-write steps and the middleware's revision bump among the
threads of one process; they do nothing across processes (README.md, caveats).
"""

from __future__ import annotations

import threading
import zlib

STRIPES = 64
_LOCKS = tuple(threading.Lock() for _ in range(STRIPES))


def for_session(sid: str) -> threading.Lock:
    return _LOCKS[zlib.crc32(sid.encode("utf-8", "surrogatepass")) % STRIPES]
