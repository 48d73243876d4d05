"""Every request the virtual users made, as they saw it.

Latency and errors are measured at the client: a request the gateway
answered with its own 502, or never answered, counts here even though the
gateway's own request counter may not show it. Samples are appended when a
request ends, so they are ordered by end time and a window is two bisects.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Sample:
    start: float
    """Seconds since the run's start."""
    end: float
    route: str
    status: int
    """HTTP status; 0 when no answer came (timeout, reset, refused)."""
    backend: str | None
    """``legacy`` or ``new`` from the gateway's debug header, when it sends one."""

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000

    @property
    def error(self) -> bool:
        return self.status == 0 or self.status >= 500


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (0.0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Summary:
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    route_p99_ms: dict[str, float]
    route_requests: dict[str, int]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def summarize(samples: list[Sample]) -> Summary:
    by_route: dict[str, list[float]] = {}
    for s in samples:
        by_route.setdefault(s.route, []).append(s.ms)
    ms = [s.ms for s in samples]
    return Summary(
        requests=len(samples), errors=sum(1 for s in samples if s.error),
        p50_ms=percentile(ms, 0.5), p99_ms=percentile(ms, 0.99),
        route_p99_ms={r: percentile(v, 0.99) for r, v in by_route.items()},
        route_requests={r: len(v) for r, v in by_route.items()},
    )


@dataclass
class Recorder:
    samples: list[Sample] = field(default_factory=list)
    _ends: list[float] = field(default_factory=list)

    def add(self, sample: Sample) -> None:
        # the clock is monotonic, but a sample may be added a hair out of order
        if self._ends and sample.end < self._ends[-1]:
            sample = Sample(sample.start, self._ends[-1], sample.route, sample.status,
                            sample.backend)
        self.samples.append(sample)
        self._ends.append(sample.end)

    def window(self, start: float, end: float) -> list[Sample]:
        """Samples that ended in [start, end)."""
        return self.samples[bisect_left(self._ends, start):bisect_left(self._ends, end)]

    def per_second(self) -> dict[int, Summary]:
        seconds: dict[int, list[Sample]] = {}
        for s in self.samples:
            seconds.setdefault(int(s.end), []).append(s)
        return {t: summarize(v) for t, v in seconds.items()}

    def last_new_start(self, since: float) -> float | None:
        """Latest start, at or after ``since``, of a request that new served."""
        starts = [s.start for s in self.samples if s.backend == "new" and s.start >= since]
        return max(starts) if starts else None

    @property
    def saw_backend_header(self) -> bool:
        return any(s.backend is not None for s in self.samples)
