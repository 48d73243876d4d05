"""Pins on the hot path: one Redis read per session per flag version, at most.

``flags.pins.Pins`` holds the sets; this memoises answers until the next flag
change (within one flag version a session's pin cannot appear for a route
that does not serve it from new -- see flags/pins.py) and records new pins in
the background, so a pinned route costs a canary session one ``SISMEMBER``
per flip and nothing after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from redis.exceptions import RedisError

from flags.pins import Pins
from gateway.observe import log
from gateway.session import budget as session_budget

_log = log.get("pins")
_MAX = 200_000


class PinBook:
    def __init__(self, pins: Pins, handle: Callable[[str], str]) -> None:
        """``handle``: session id -> the name Redis keeps it under (never the cookie)."""
        self._pins = pins
        self._handle = handle
        self._memo: dict[tuple[str, str], bool] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def reset(self) -> None:
        """Forget every memoised answer (on a flag change)."""
        self._memo.clear()

    async def pinned(self, route: str, sid: str) -> bool:
        key = (route, sid)
        hit = self._memo.get(key)
        if hit is None:
            try:
                hit = await self._pins.has(route, self._handle(sid))
            except (RedisError, OSError):
                return False  # unknown: the session follows its bucket
            self._remember(key, hit)
        return hit

    def note(self, route: str, sid: str) -> None:
        """The session is being served by new on a pinning route: pin it (once)."""
        key = (route, sid)
        if self._memo.get(key):
            return
        self._remember(key, True)
        task = session_budget.spawn(self._add(route, sid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _add(self, route: str, sid: str) -> None:
        try:
            await self._pins.add(route, self._handle(sid))
        except (RedisError, OSError) as exc:
            self._memo.pop((route, sid), None)
            _log.warning("pin_not_recorded", route=route, reason=type(exc).__name__)

    def _remember(self, key: tuple[str, str], value: bool) -> None:
        if len(self._memo) >= _MAX:
            self._memo.clear()
        self._memo[key] = value

    async def stop(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
