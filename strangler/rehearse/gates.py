"""SLO gates judged against one window of a stage. Pure: no I/O, no clock.

A latency or error gate judges a window only once it holds the gate's
``min_requests`` requests (for p99 by route: requests of that route), so a
stage's first second cannot breach on three slow requests; the figure is
still reported. Session continuity and the drill's rollback time are
judged whatever the count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strangler.rehearse.plan import Gates
from strangler.rehearse.stats import Summary


@dataclass(frozen=True, slots=True)
class GateResult:
    name: str
    route: str | None
    limit: float
    observed: float | None
    passed: bool
    samples: int

    def to_dict(self) -> dict[str, Any]:
        observed = None if self.observed is None else round(self.observed, 4)
        return {"name": self.name, "route": self.route, "limit": self.limit,
                "observed": observed, "passed": self.passed, "samples": self.samples}

    def describe(self) -> str:
        label = f"{self.name}.{self.route}" if self.route else self.name
        seen = "n/a" if self.observed is None else f"{self.observed:.4g}"
        verdict = "held" if self.passed else "BREACHED"
        return f"{label} {seen} (limit {self.limit:g}, {self.samples} samples): {verdict}"


@dataclass(frozen=True, slots=True)
class Window:
    """What was seen during (part of) a stage."""

    summary: Summary
    gateway_requests: float | None
    """Requests the gateway counted (/metrics delta); None when /metrics was unreadable."""
    fallbacks: float | None
    integrity_failures: int
    rollback_s: float | None = None
    final: bool = False
    """The stage's end: a drill's rollback time must have been measured by now."""


def evaluate(gates: Gates, w: Window) -> list[GateResult]:
    out: list[GateResult] = []
    s, enough = w.summary, w.summary.requests >= gates.min_requests
    if gates.error_rate is not None:
        out.append(GateResult("error_rate", None, gates.error_rate, s.error_rate,
                              not enough or s.error_rate <= gates.error_rate, s.requests))
    for route, limit in (gates.p99_ms or {}).items():
        if route == "all":
            seen, n = (s.p99_ms if s.requests else None), s.requests
        else:
            seen, n = s.route_p99_ms.get(route), s.route_requests.get(route, 0)
        ok = seen is None or n < gates.min_requests or seen <= limit
        out.append(GateResult("p99_ms", route, limit, seen, ok, n))
    if gates.fallback_rate is not None:
        total = w.gateway_requests or 0.0
        rate = (w.fallbacks or 0.0) / total if total else None
        ok = rate is None or total < gates.min_requests or rate <= gates.fallback_rate
        out.append(GateResult("fallback_rate", None, gates.fallback_rate, rate, ok, int(total)))
    if gates.session_continuity:
        out.append(GateResult("session_continuity", None, 0, w.integrity_failures,
                              w.integrity_failures == 0, s.requests))
    if gates.rollback_s is not None:
        ok = w.rollback_s <= gates.rollback_s if w.rollback_s is not None else not w.final
        out.append(GateResult("rollback_s", None, gates.rollback_s, w.rollback_s, ok, 1))
    return out


def breached(results: list[GateResult]) -> list[GateResult]:
    return [r for r in results if not r.passed]
