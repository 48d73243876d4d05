"""One request's budget for the Redis work of its session.

Redis slow but under its command timeout compounds: every round trip of a
request's session work (the record read, the sync lock, the fenced writes,
the pull after legacy, a token's read) may take up to ``redis.timeout_ms``,
and a legacy write makes several. So each request gets one total,
``gateway.session_sync.redis_budget_ms``: the session store runs every Redis
call of the request under what is left of it and charges the time the call
took. A call that would go past it is cut and ``BudgetExhausted`` raised; the
bridge then degrades as in an outage (docs/consistency.md, "Budgets").

A cut is not an outage: Redis answered nothing wrong, so no probe is started
and nothing marks it down.

Only time spent on Redis is charged: the monolith's hook and the pauses
between two tries for a busy lock are not (``session_sync.budget_ms`` bounds
the whole sync, wall clock). The budget belongs to the task that began it
(aiohttp runs each request in a task of its own): a task started from a
request -- a shadow copy, a probe, a resync, a background release -- has
none, and is bounded by the Redis client's own timeouts as before. Such tasks are
started with ``spawn``, which runs them in a copy of the context without the
budget: the budget is one context variable read per call, with no check of
which task asks (an ``asyncio.current_task()`` per call cost the hot path ~5 %).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from contextvars import ContextVar, copy_context
from typing import Any, TypeVar

from gateway.errors import ServiceUnavailable
from gateway.observe import log

_log = log.get("session_budget")


class BudgetExhausted(ServiceUnavailable):
    """This request's Redis budget is spent: degrade as in an outage, never wait longer."""

    code = "session_budget_exhausted"
    pending: asyncio.Future[object] | None = None
    """The cut call, still running (it is left to finish, never cancelled)."""


class RedisBudget:
    """How much Redis time one request has left for its session work.

    ``on_exhausted(stage)`` is called once, when the first call is cut (for a
    metric); the event is logged once too, naming what was running.
    """

    def __init__(self, total_s: float, on_exhausted: Callable[[str], None] = lambda s: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total_s = total_s
        self.spent_s = 0.0
        self.stage = "session"
        """What the request is doing (``before_legacy``, ``after_legacy``, ``to_new``)."""
        self.exhausted = False
        self._on_exhausted = on_exhausted
        self._clock = clock

    @property
    def remaining_s(self) -> float:
        return max(0.0, self.total_s - self.spent_s)

    @asynccontextmanager
    async def spend(self, op: str) -> AsyncIterator[None]:
        """Run one Redis call (``op``: what it is, for the log) under what is left;
        ``BudgetExhausted`` if nothing is left or the call is cut."""
        left = self.remaining_s
        if left <= 0:
            raise self._exhausted(op)
        started = self._clock()
        try:
            async with asyncio.timeout(left) as scope:
                yield
        except TimeoutError:
            if not scope.expired():
                raise
            self.spent_s = self.total_s
            raise self._exhausted(op) from None
        finally:
            self.spent_s = min(self.total_s, self.spent_s + self._clock() - started)

    def _exhausted(self, op: str) -> BudgetExhausted:
        if not self.exhausted:
            self.exhausted = True
            self._on_exhausted(self.stage)
            _log.warning("session_budget_exhausted", stage=self.stage, op=op,
                         budget_ms=round(self.total_s * 1000))
        return BudgetExhausted(f"session unavailable: the request's Redis budget "
                               f"({round(self.total_s * 1000)} ms) is spent; try again")


_budget: ContextVar[RedisBudget | None] = ContextVar("strangler_redis_budget", default=None)


def begin(budget: RedisBudget | None) -> None:
    """The current task's session work runs under ``budget`` from now on (None: none)."""
    _budget.set(budget)


def current() -> RedisBudget | None:
    """The budget of the request the current task serves; None outside one (a task
    started with ``spawn`` from a request has none)."""
    return _budget.get()


def stage(name: str) -> None:
    """Name what the current request's session work is doing now."""
    budget = _budget.get()
    if budget is not None:
        budget.stage = name


T = TypeVar("T")


def spawn(coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
    """A task of its own, off the current request's budget (a shadow copy, a probe, a
    resync, a background release): it runs in a copy of the context without it."""
    context = copy_context()
    context.run(_budget.set, None)
    return asyncio.get_running_loop().create_task(coro, name=name, context=context)
