"""Live per-route figures for the dashboard: the last few seconds, in process memory.

Prometheus counters answer "how many since start"; an operator who has just
flipped a route wants "what is happening now": requests per second by
backend, the 5xx share and p99 latency over the last ``window_s`` seconds.

Each route keeps a ring of one-second buckets (``window_s`` of them). A
bucket holds, per backend, a request count, a 5xx count and a latency
histogram with ``BUCKETS_PER_OCTAVE`` log-spaced bins from ``MIN_LATENCY_S``
up (anything slower lands in the last bin), so memory is fixed per route
and the p99 read back is the upper edge of the bin it falls in: at most
``2 ** (1 / BUCKETS_PER_OCTAVE)`` (about 9 %) above the true value.

The hot path is ``Recorder.__call__``: the metrics module caches one
recorder per (route, backend, status), so counting a request is a clock
read, a compare, and three increments -- no dict lookup, no allocation
except when a new second begins (one bucket per route per second). Reads
(``snapshot``) sum the ring and are meant for a dashboard refreshing every
second or two. Everything runs on the event loop's thread: no locks.

The figures are this gateway process's own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

BACKENDS = ("legacy", "new")
MIN_LATENCY_S = 50e-6
BUCKETS_PER_OCTAVE = 8
MAX_LATENCY_S = 120.0
N_BINS = math.ceil(math.log2(MAX_LATENCY_S / MIN_LATENCY_S) * BUCKETS_PER_OCTAVE) + 1
_SCALE = 1.0 / MIN_LATENCY_S
_log2 = math.log2


def bin_of(seconds: float) -> int:
    """The histogram bin of a latency (bin 0 also takes everything below the minimum)."""
    x = seconds * _SCALE
    if x <= 1.0:
        return 0
    i = int(_log2(x) * BUCKETS_PER_OCTAVE)
    return i if i < N_BINS else N_BINS - 1


def bin_upper_s(i: int) -> float:
    """The upper edge of bin ``i``, in seconds (what a percentile in that bin reports)."""
    return float(MIN_LATENCY_S * 2.0 ** ((i + 1) / BUCKETS_PER_OCTAVE))


class _Second:
    """One second of one route: per backend, requests, 5xx and a latency histogram."""

    __slots__ = ("at", "errors", "latency", "requests")

    def __init__(self, at: int) -> None:
        self.at = at
        self.requests = [0, 0]
        self.errors = [0, 0]
        self.latency = [[0] * N_BINS, [0] * N_BINS]


class RouteWindow:
    """The ring of one-second buckets of one route."""

    __slots__ = ("_clock", "_cur", "_ring", "route")

    def __init__(self, route: str, window_s: int, clock: Callable[[], float]) -> None:
        self.route = route
        self._clock = clock
        empty = _Second(-1)
        self._ring: list[_Second] = [empty] * window_s
        self._cur = empty

    def current(self, now: int) -> _Second:
        """The bucket of second ``now``, starting a fresh one (over the oldest) if needed."""
        cur = self._cur
        if cur.at != now:
            cur = self._cur = self._ring[now % len(self._ring)] = _Second(now)
        return cur

    def seconds(self, now: int, span: int) -> Iterable[_Second]:
        """The buckets of the seconds ``now - span + 1 .. now`` that saw traffic."""
        return (s for s in self._ring if now - span < s.at <= now)


class Recorder:
    """Counts requests of one (route, backend, status); the only thing the hot path calls."""

    __slots__ = ("_backend", "_clock", "_error", "_window")

    def __init__(self, window: RouteWindow, backend: int, error: bool,
                 clock: Callable[[], float]) -> None:
        self._window = window
        self._backend = backend
        self._error = error
        self._clock = clock

    def __call__(self, seconds: float) -> None:
        now = int(self._clock())
        w = self._window
        s = w._cur
        if s.at != now:
            s = w.current(now)
        b = self._backend
        s.requests[b] += 1
        if self._error:
            s.errors[b] += 1
        x = seconds * _SCALE
        if x <= 1.0:
            s.latency[b][0] += 1
        else:
            i = int(_log2(x) * BUCKETS_PER_OCTAVE)
            s.latency[b][i if i < N_BINS else N_BINS - 1] += 1


@dataclass(frozen=True, slots=True)
class Figures:
    """One route over one window: what the dashboard shows."""

    route: str
    window_s: float
    """The span the rates are over (the current second counts as far as it has gone)."""
    requests: dict[str, int]
    errors: dict[str, int]
    p99_s: dict[str, float | None]
    """Per backend, and ``all``; None with no request in the window."""

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def new_share(self) -> float | None:
        return self.requests["new"] / self.total if self.total else None

    @property
    def error_rate(self) -> float | None:
        return sum(self.errors.values()) / self.total if self.total else None

    def to_dict(self) -> dict[str, Any]:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000, 3)
        return {
            "route": self.route, "window_s": round(self.window_s, 3),
            "requests": dict(self.requests), "errors": dict(self.errors),
            "rps": {k: round(v / self.window_s, 2) for k, v in self.requests.items()},
            "new_share": self.new_share, "error_rate": self.error_rate,
            "p99_ms": ms(self.p99_s["all"]),
            "p99_ms_by_backend": {k: ms(self.p99_s[k]) for k in BACKENDS},
        }


class LiveStats:
    """Every route's window; hands out recorders and reads figures back."""

    def __init__(self, window_s: int = 10, clock: Callable[[], float] = time.monotonic) -> None:
        if window_s < 1:
            raise ValueError("window_s must be >= 1")
        self.window_s = window_s
        self._clock = clock
        self._routes: dict[str, RouteWindow] = {}

    def recorder(self, route: str, backend: str, status: int) -> Recorder:
        """The counter for one (route, backend, status); cache it, call it per request."""
        window = self._routes.get(route)
        if window is None:
            window = self._routes[route] = RouteWindow(route, self.window_s, self._clock)
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        return Recorder(window, BACKENDS.index(backend), status >= 500, self._clock)

    def observe(self, route: str, backend: str, status: int, seconds: float) -> None:
        """Uncached convenience (tests, rare callers); the hot path uses ``recorder``."""
        self.recorder(route, backend, status)(seconds)

    def snapshot(self, routes: Iterable[str], span_s: int | None = None) -> list[Figures]:
        """Figures of ``routes`` over the last ``span_s`` seconds (default: the whole window).

        The current second is partial: the rates divide by the time actually
        covered, ``span_s - 1`` whole seconds plus the part of this one gone by.
        """
        span = min(span_s or self.window_s, self.window_s)
        clock = self._clock()
        now = int(clock)
        covered = max(span - 1 + (clock - now), 0.001)
        return [self._figures(name, now, span, covered) for name in routes]

    def _figures(self, route: str, now: int, span: int, covered: float) -> Figures:
        requests = dict.fromkeys(BACKENDS, 0)
        errors = dict.fromkeys(BACKENDS, 0)
        hists = {b: [0] * N_BINS for b in BACKENDS}
        window = self._routes.get(route)
        for s in window.seconds(now, span) if window else ():
            for i, b in enumerate(BACKENDS):
                requests[b] += s.requests[i]
                errors[b] += s.errors[i]
                if s.requests[i]:
                    hists[b] = [x + y for x, y in zip(hists[b], s.latency[i], strict=True)]
        both = [x + y for x, y in zip(*hists.values(), strict=True)]
        p99: dict[str, float | None] = {b: percentile(hists[b], 0.99) for b in BACKENDS}
        p99["all"] = percentile(both, 0.99)
        return Figures(route, covered, requests, errors, p99)


def percentile(hist: list[int], q: float) -> float | None:
    """The upper edge of the bin holding the ``q`` quantile; None for an empty histogram."""
    total = sum(hist)
    if not total:
        return None
    rank = math.ceil(q * total)
    seen = 0
    for i, count in enumerate(hist):
        seen += count
        if seen >= rank:
            return bin_upper_s(i)
    return bin_upper_s(len(hist) - 1)  # pragma: no cover -- seen reaches total
