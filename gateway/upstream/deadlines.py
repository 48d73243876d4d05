"""Deadlines for every exchange with one timer between them, not one each.

``asyncio.timeout_at`` arms an event-loop timer per use (about 5 us on uvloop),
and aiohttp's ``sock_read`` timeout re-arms one for every chunk a response
delivers. A proxy bounds every exchange, and almost no bound ever fires. Here
each scope is an entry in a dict; one task, running only while scopes exist,
looks every ``tick`` seconds for scopes past their time and cancels their
tasks. A scope that runs out raises ``TimeoutError`` on exit, as
``asyncio.timeout_at`` does, at most one tick late; a cancellation that is not
the scope's own (the client went away) passes through untouched.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from types import TracebackType
from typing import Protocol

TICK_S = 0.05


class Deadlines:
    """The scopes of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float = TICK_S) -> None:
        self._loop = loop
        self._tick = tick
        self._scopes: dict[int, Expiring] = {}
        self._task: asyncio.Task[None] | None = None

    def at(self, when: float) -> Scope:
        """A scope ending at ``when`` (the loop's clock)."""
        return Scope(self, when)

    def watch(self, item: Expiring) -> None:
        """Call ``item._expire()`` once ``item.when`` has passed (moved freely meanwhile),
        until ``unwatch``: how a protocol bounds an exchange without a task to cancel."""
        self._scopes[id(item)] = item
        if self._task is None:
            # Its own empty context: started by whichever request came first, it must
            # carry none of that request's context (its session budget) for ever.
            self._task = self._loop.create_task(self._watch(), context=contextvars.Context())

    def unwatch(self, item: Expiring) -> None:
        self._scopes.pop(id(item), None)

    _enter = watch
    _leave = unwatch

    async def _watch(self) -> None:
        try:
            while self._scopes:
                await asyncio.sleep(self._tick)
                now = self._loop.time()
                for scope in [s for s in self._scopes.values() if s.when <= now]:
                    scope._expire()
        finally:
            self._task = None


class Expiring(Protocol):
    when: float
    """The loop's clock."""

    def _expire(self) -> None: ...


class Scope:
    __slots__ = ("_cancelling", "_owner", "_task", "expired", "when")

    def __init__(self, owner: Deadlines, when: float) -> None:
        self._owner = owner
        self.when = when
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self.expired = False

    async def __aenter__(self) -> Scope:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline scope needs a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._owner._enter(self)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._owner._leave(self)
        if self.expired and exc_type is asyncio.CancelledError:
            assert self._task is not None
            if self._task.uncancel() <= self._cancelling:
                raise TimeoutError from exc

    def _expire(self) -> None:
        if not self.expired and self._task is not None:
            self.expired = True
            self._task.cancel()


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = (
    weakref.WeakKeyDictionary())


_last: Deadlines | None = None


def deadline_at(when: float) -> Scope:
    """``async with deadline_at(loop.time() + s):`` -- like ``asyncio.timeout_at``."""
    return Scope(of(asyncio.get_running_loop()), when)


def of(loop: asyncio.AbstractEventLoop) -> Deadlines:
    """The deadlines of ``loop``."""
    global _last
    if _last is None or _last._loop is not loop:
        _last = _per_loop.get(loop)
        if _last is None:
            _last = _per_loop[loop] = Deadlines(loop)
    return _last
