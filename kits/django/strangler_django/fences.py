"""The highest fence seen per session id, in process memory (docs/protocol.md section 4).

Kept also for ids the node holds no session for and after a session is
deleted, as the protocol asks; a node restart forgets them with its sessions
(a locmem engine) -- the gateway's fences only grow, so that is safe. The dict
grows by one entry per fenced id; entries are small and a process restart
clears them. Callers hold ``locks.for_session(sid)``.
"""

from __future__ import annotations

_HIGHEST: dict[str, int] = {}


def note(sid: str, fence: int) -> bool:
    """Remember ``fence`` if it is the highest seen for ``sid``; False when a higher one was."""
    if fence < _HIGHEST.get(sid, -1):
        return False
    _HIGHEST[sid] = fence
    return True
