"""Samples of the sessions the bridge already exports, for session discovery.

The legacy hook client hands every export it reads -- the monolith's own JSON
``data``, before the profile translates it, so a session the profile does not
fit is seen too -- to ``SessionSampler.offer``. That is the whole cost on the
request path: a hash of the session id, a few comparisons and, for a sample,
an append. No export is ever made for the sampler's sake, none is fenced or
imported by it: it only reads what the bridge fetched anyway.

Bounded (``SamplerLimits``): a share of sessions (chosen by their id, so one
session is sampled again and its changes show), at most one sample per session
per ``per_session_s``, at most ``max_sessions`` sessions and ``max_samples``
samples in all -- then sampling stops for the life of the process. Samples are
folded into ``adapters.discovery.SessionShapes`` soon after (a slice at a time
on the event loop, never inside the request), so the raw data is held only
until then and never past ``max_pending_bytes``; only shapes and counts stay.
Each gateway process samples its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from adapters.discovery import SessionShapes, Summary

_SLICE: Final = 32
"""Samples folded per turn of the event loop."""


@dataclass(frozen=True, slots=True)
class SamplerLimits:
    share: float = 0.25
    """Of sessions, those sampled at all (by a hash of the id: 0 turns sampling off)."""
    per_session_s: float = 10.0
    max_sessions: int = 1000
    max_samples: int = 5000
    max_pending_bytes: int = 8 * 1024 * 1024
    """Raw exports waiting to be folded; a sample past it is dropped."""


@dataclass(slots=True)
class _Pending:
    sid: str
    at: float
    data: Any = field(repr=False)
    size: int


class SessionSampler:
    def __init__(self, limits: SamplerLimits | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.limits = limits or SamplerLimits()
        self._clock = clock
        self._cut = int(max(0.0, min(self.limits.share, 1.0)) * 2**32)
        self._last: dict[int, float] = {}
        """hash of a session id -> when it was last sampled (ids are not kept)"""
        self._pending: deque[_Pending] = deque()
        self._pending_bytes = 0
        self._folding = False
        self.shapes = SessionShapes(max_sessions=self.limits.max_sessions)
        self.taken = 0
        self.dropped = 0
        """Samples refused because too many raw exports were waiting."""

    def offer(self, sid: str, data: Any, size: int) -> None:
        """An export the bridge just read (``size``: its body's bytes). Never raises; never
        changes ``data``, which the caller must not change either."""
        key = hash(sid)
        if self.taken >= self.limits.max_samples or (key & 0xFFFFFFFF) >= self._cut:
            return
        now = self._clock()
        last = self._last.get(key)
        if last is None:
            if len(self._last) >= self.limits.max_sessions:
                return
        elif now - last < self.limits.per_session_s:
            return
        if self._pending_bytes + size > self.limits.max_pending_bytes:
            self.dropped += 1
            return
        self._last[key] = now
        self._pending.append(_Pending(sid, now, data, size))
        self._pending_bytes += size
        self.taken += 1
        if not self._folding:
            try:
                asyncio.get_running_loop().call_soon(self._fold_slice)
                self._folding = True
            except RuntimeError:  # no event loop (a unit test): summary() folds it
                pass

    def _fold_slice(self) -> None:
        self._fold(_SLICE)
        if self._pending:
            asyncio.get_running_loop().call_soon(self._fold_slice)
        else:
            self._folding = False

    def _fold(self, count: int) -> None:
        for _ in range(min(count, len(self._pending))):
            p = self._pending.popleft()
            self._pending_bytes -= p.size
            self.shapes.add(p.sid, p.at, p.data)

    async def summary(self) -> Summary:
        """The figures so far, with every sample taken until now folded in."""
        while self._pending:
            self._fold(_SLICE)
            await asyncio.sleep(0)
        return self.shapes.summary()

    def status(self) -> dict[str, Any]:
        lim = self.limits
        return {"share": lim.share, "per_session_s": lim.per_session_s,
                "max_sessions": lim.max_sessions, "max_samples": lim.max_samples,
                "taken": self.taken, "sessions": len(self._last), "dropped": self.dropped,
                "pending": len(self._pending), "full": self.taken >= lim.max_samples}
