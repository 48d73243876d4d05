"""Per-route circuit breaker for the new side.

closed --(``failures`` consecutive failures)--> open --(cool-down)--> half-open
half-open lets exactly one probe through: success closes, failure re-opens.
A probe that never reports back (cancelled client) does not wedge the
breaker: after another cool-down a new probe is allowed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum

from gateway.observe import log

_log = log.get("breaker")


class State(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class Breaker:
    def __init__(self, route: str, failures: int, cooldown_s: float,
                 on_change: Callable[[str, State], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.route = route
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.state = State.CLOSED
        self._failures = 0
        self._since = 0.0
        self._clock = clock
        self._on_change = on_change

    def allow(self) -> bool:
        """May a request go to new now? In half-open, only the single probe may."""
        if self.state is State.CLOSED:
            return True
        now = self._clock()
        if now - self._since < self.cooldown_s:
            return False
        self._set(State.HALF_OPEN, now, "cooldown_elapsed")
        return True

    def peek(self) -> str:
        """What ``allow`` would answer now, without claiming the half-open probe."""
        if self.state is State.CLOSED:
            return "closed"
        if self._clock() - self._since < self.cooldown_s:
            return "open"
        return "half_open"

    def success(self) -> None:
        if self.state is State.OPEN:
            return  # a straggler sent before the breaker opened: the cool-down stands
        self._failures = 0
        if self.state is State.HALF_OPEN:
            self._set(State.CLOSED, self._clock(), "probe_succeeded")

    def failure(self, reason: str) -> None:
        self._failures += 1
        if self.state is State.HALF_OPEN:
            self._set(State.OPEN, self._clock(), f"probe_failed: {reason}")
        elif self.state is State.CLOSED and self._failures >= self.threshold:
            self._set(State.OPEN, self._clock(),
                      f"{self._failures} consecutive failures, last: {reason}")

    def _set(self, state: State, now: float, reason: str) -> None:
        self.state = state
        self._since = now
        event = {State.OPEN: "breaker_opened", State.HALF_OPEN: "breaker_half_open",
                 State.CLOSED: "breaker_closed"}[state]
        (_log.warning if state is State.OPEN else _log.info)(event, route=self.route,
                                                              reason=reason)
        if self._on_change:
            self._on_change(self.route, state)
