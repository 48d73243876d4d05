"""The gateway's ``/metrics``, reduced to what a rehearsal reads.

Traffic share per route and backend comes from ``strangler_requests_total``
(route, backend, status) and fallbacks from ``strangler_fallbacks_total``;
both are counters, so figures over a window are differences between two
scrapes. A counter that went down (a restarted gateway) counts from zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True, slots=True)
class Scrape:
    requests: dict[tuple[str, str], float] = field(default_factory=dict)
    """(route, backend) -> requests served, every status."""
    fallbacks: dict[str, float] = field(default_factory=dict)
    """route -> requests retried on legacy after new failed."""

    @property
    def total_requests(self) -> float:
        return sum(self.requests.values())

    @property
    def total_fallbacks(self) -> float:
        return sum(self.fallbacks.values())

    def backend_total(self, backend: str) -> float:
        return sum(v for (_, b), v in self.requests.items() if b == backend)


def parse(text: str) -> Scrape:
    requests: dict[tuple[str, str], float] = {}
    fallbacks: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "strangler_requests_total":
                key = (sample.labels.get("route", "?"), sample.labels.get("backend", "?"))
                requests[key] = requests.get(key, 0.0) + sample.value
            elif sample.name == "strangler_fallbacks_total":
                route = sample.labels.get("route", "?")
                fallbacks[route] = fallbacks.get(route, 0.0) + sample.value
    return Scrape(requests, fallbacks)


def _delta(now: float, before: float) -> float:
    return now - before if now >= before else now


def delta(now: Scrape, before: Scrape) -> Scrape:
    """What happened between two scrapes."""
    return Scrape(
        {k: _delta(v, before.requests.get(k, 0.0)) for k, v in now.requests.items()},
        {k: _delta(v, before.fallbacks.get(k, 0.0)) for k, v in now.fallbacks.items()},
    )


def by_route(d: Scrape) -> dict[str, dict[str, int]]:
    """route -> {"legacy": n, "new": n} (every route that has a series)."""
    out: dict[str, dict[str, int]] = {}
    for (route, backend), value in d.requests.items():
        entry = out.setdefault(route, {"legacy": 0, "new": 0})
        entry[backend] = entry.get(backend, 0) + round(value)
    return out
