"""The per-request figures are counted without prometheus-client's locks
(``gateway.observe.metrics._PerRequest``); a scrape must read exactly what
prometheus-client's own Counter and Histogram would have exposed."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.observe.metrics import _BUCKETS, Metrics


def _samples(registry: CollectorRegistry, prefix: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples
            if s.name.startswith(prefix) and not s.name.endswith("_created")}


def test_a_scrape_reads_what_prometheus_client_would_have_counted() -> None:
    metrics = Metrics()
    reference = CollectorRegistry()
    requests = Counter("strangler_requests_total", "", ("route", "backend", "status"),
                       registry=reference)
    latency = Histogram("strangler_request_duration_seconds", "", ("route", "backend"),
                        buckets=_BUCKETS, registry=reference)
    decisions = Counter("strangler_backend_decisions_total", "",
                        ("route", "backend", "reason"), registry=reference)
    rng = random.Random(7)
    edges = [*_BUCKETS, 0.0, 99.0]  # on a bucket's bound counts in that bucket
    for _ in range(2000):
        route, backend = rng.choice(["cart", "api"]), rng.choice(["legacy", "new"])
        status, reason = rng.choice([200, 404, 502]), rng.choice(["stage_new", "canary_out"])
        seconds = rng.choice(edges) if rng.random() < 0.2 else rng.expovariate(20)
        metrics.observe_request(route, backend, status, seconds, reason)
        requests.labels(route, backend, str(status)).inc()
        latency.labels(route, backend).observe(seconds)
        decisions.labels(route, backend, reason).inc()
    for prefix in ("strangler_requests", "strangler_request_duration_seconds",
                   "strangler_backend_decisions"):
        ours, theirs = _samples(metrics.registry, prefix), _samples(reference, prefix)
        assert ours.keys() == theirs.keys()
        for key, value in theirs.items():
            assert abs(ours[key] - value) < 1e-6, key
