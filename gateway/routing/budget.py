"""Retry budget: fallbacks may add at most a fixed share of extra upstream attempts.

Counted per route over a sliding window of one-second buckets (Finagle and
Envoy do the same): every request to the route deposits, every fallback
retry withdraws. With ``ratio`` 0.2 a full outage of new costs legacy at most
20 % more attempts than there were requests, plus ``min_retries`` per window
so that a quiet route can still fall back at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RetryBudget:
    def __init__(self, ratio: float, min_retries: int, window_s: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ratio = ratio
        self.min_retries = min_retries
        self._window = window_s
        self._clock = clock
        self._requests = [0] * window_s
        self._retries = [0] * window_s
        self._stamp = [0] * window_s

    def _slot(self) -> int:
        second = int(self._clock())
        i = second % self._window
        if self._stamp[i] != second:
            self._stamp[i], self._requests[i], self._retries[i] = second, 0, 0
        return i

    def _live(self, counts: list[int]) -> int:
        oldest = int(self._clock()) - self._window
        return sum(c for c, s in zip(counts, self._stamp, strict=True) if s > oldest)

    def request(self) -> None:
        self._requests[self._slot()] += 1

    def try_retry(self) -> bool:
        """Take one retry from the budget; False when it is spent."""
        slot = self._slot()
        allowed = self.ratio * self._live(self._requests) + self.min_retries
        if self._live(self._retries) + 1 > allowed:
            return False
        self._retries[slot] += 1
        return True
