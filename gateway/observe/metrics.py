"""Prometheus metrics (prometheus-client), one registry per gateway process.

Names follow Prometheus conventions: ``_total`` counters, ``_seconds``
histograms, base units. Label children used on the hot path are cached, so
counting a request is a dict lookup and two increments.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

from gateway.observe.live_stats import LiveStats, Recorder

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LE = tuple(floatToGoString(b) for b in _BUCKETS)  # type: ignore[no-untyped-call]
_REDIS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
                  0.75, 1.0, 2.0, 3.0)


class _PerRequest:
    """The figures counted on every answered request -- ``strangler_requests_total``,
    ``strangler_request_duration_seconds``, ``strangler_backend_decisions_total``,
    ``strangler_session_push_skipped_total`` -- kept as plain numbers and turned
    into Prometheus samples when scraped. prometheus-client's label children take a
    lock on every increment: these were 5 % of the gateway's CPU under load. Only
    the event loop writes them, and a scrape reads them on the same loop."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, ...], list[int]] = {}
        self.decisions: dict[tuple[str, ...], list[int]] = {}
        self.latency: dict[tuple[str, str], list[float]] = {}
        self.skipped: dict[tuple[str, ...], list[int]] = {}
        """Legacy-routed requests sent without a push: as frequent as requests."""

    @staticmethod
    def cell(family: dict[tuple[str, ...], list[int]], labels: tuple[str, ...]) -> list[int]:
        return family.setdefault(labels, [0])

    def timing(self, route: str, backend: str) -> list[float]:
        """Counts per bucket (not cumulative), +Inf's, then the sum of seconds."""
        return self.latency.setdefault((route, backend), [0.0] * (len(_BUCKETS) + 2))

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("strangler_requests", "Requests served, by outcome.",
                                       labels=("route", "backend", "status"))
        for labels, cell in list(self.requests.items()):
            requests.add_metric(labels, cell[0])
        yield requests
        latency = HistogramMetricFamily("strangler_request_duration_seconds",
                                        "Time from request to response headers.",
                                        labels=("route", "backend"))
        for (route, backend), counts in list(self.latency.items()):
            seen, buckets = 0.0, []
            for bound, count in zip(_LE, counts, strict=False):
                seen += count
                buckets.append((bound, seen))
            buckets.append(("+Inf", seen + counts[len(_BUCKETS)]))
            latency.add_metric((route, backend), buckets, sum_value=counts[-1])
        yield latency
        decisions = CounterMetricFamily("strangler_backend_decisions",
                                        "Backend decisions, by reason.",
                                        labels=("route", "backend", "reason"))
        for labels, cell in list(self.decisions.items()):
            decisions.add_metric(labels, cell[0])
        yield decisions
        skipped = CounterMetricFamily(
            "strangler_session_push_skipped",
            "Legacy-routed requests sent to their node without a push, by why that is safe: "
            "in_sync (the record says the node holds the latest), known_in_sync (this "
            "process saw it in sync under the client's token), served_from_proof (Redis "
            "unavailable, the node provably holds the latest).", labels=("reason",))
        for labels, cell in list(self.skipped.items()):
            skipped.add_metric(labels, cell[0])
        yield skipped


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self._per_request = _PerRequest()
        r.register(self._per_request)
        self.fallbacks = Counter("strangler_fallbacks_total",
                                 "Requests retried on legacy after new failed.",
                                 ("route", "reason"), registry=r)
        self.fallbacks_refused = Counter("strangler_fallbacks_refused_total",
                                         "Failures on new that were not retried on legacy.",
                                         ("route", "reason"), registry=r)
        self.upstream_errors = Counter("strangler_upstream_errors_total",
                                       "Backend failures, by kind.", ("backend", "kind"),
                                       registry=r)
        self.breaker_state = Gauge("strangler_breaker_state",
                                   "Circuit breaker: 0 closed, 1 open, 2 half-open.", ("route",),
                                   registry=r)
        self.breaker_transitions = Counter("strangler_breaker_transitions_total",
                                           "Breaker state changes.", ("route", "to"), registry=r)
        self.session_ops = Counter("strangler_session_operations_total",
                                   "Session bridge operations: pull, push, conflict, rehydrate, "
                                   "drop, token.", ("op", "reason"), registry=r)
        self.lock_acquired = Counter(
            "strangler_session_lock_total",
            "Session sync lock acquisitions, by outcome: at_once, after_wait, "
            "orphan_taken_back (a lock this process lost track of), timed_out.",
            ("outcome",), registry=r)
        self.lock_wait = Histogram("strangler_session_lock_wait_seconds",
                                   "Time waited for a session's sync lock.", buckets=_BUCKETS,
                                   registry=r)
        self.stale = Counter(
            "strangler_session_stale_detected_total",
            "A sync found the record's view of a node out of date and corrected it before "
            "merging: unrecorded_push (an import of ours that landed unrecorded), "
            "unknown_import, revision_went_back, unreadable_base, unreadable_document.",
            ("kind",), registry=r)
        self.budget_exhausted = Counter(
            "strangler_session_budget_exhausted_total",
            "Requests whose session work ran out of its Redis budget "
            "(gateway.session_sync.redis_budget_ms), by what they were doing: before_legacy, "
            "after_legacy, to_new. They were served as in an outage or refused.",
            ("stage",), registry=r)
        self.redis_time = Histogram(
            "strangler_session_redis_seconds",
            "Redis time of one answered request's session work (requests that made none "
            "are left out): what gateway.session_sync.redis_budget_ms bounds.",
            buckets=_REDIS_BUCKETS, registry=r)
        self.refusals = Counter(
            "strangler_session_refused_total",
            "Requests refused (503) to keep the session consistent, by why.", ("reason",),
            registry=r)
        self.unbridgeable_total = Counter(
            "strangler_session_unbridgeable_total",
            "Sessions left to legacy because they do not fit the session profile: not_json, "
            "not_object, oversize, identity, type, path, document (a shared document that "
            "breaks the profile).", ("reason",), registry=r)
        self.merge_conflicts = Counter(
            "strangler_session_merge_conflicts_total",
            "Values both sides changed differently, resolved by the field's rule "
            "(lww: the later write), by declared field ('user', 'extra' for the rest).",
            ("field",), registry=r)
        self.flag_evaluations = Counter(
            "strangler_flag_evaluations_total",
            "Flag SDK evaluations: a canary route's first request of a session per flag "
            "version (later ones are memoised), by result (in or out of the canary).",
            ("route", "result"), registry=r)
        self.redis_errors = Counter("strangler_redis_errors_total", "Redis failures seen.",
                                    registry=r)
        self.redis_up = Gauge("strangler_session_store_up", "1 when Redis answers.", registry=r)
        self.flag_version = Gauge("strangler_flag_version", "Flag state version in use.",
                                  registry=r)
        self.kill_switch = Gauge("strangler_kill_switch", "1 when the kill switch is on.",
                                 registry=r)
        self.route_percent = Gauge("strangler_route_new_percent",
                                   "Share of sessions the flag sends to new.", ("route",),
                                   registry=r)
        self.shadow = Counter("strangler_shadow_comparisons_total",
                              "Shadowed requests, by comparison result.", ("route", "result"),
                              registry=r)
        self.shadow_skipped = Counter("strangler_shadow_skipped_total",
                                      "Shadow copies not made, by reason (busy, streamed).",
                                      ("route", "reason"), registry=r)
        self.shadow_consistency = Gauge("strangler_shadow_consistency_ratio",
                                        "Share of compared shadow requests whose answers "
                                        "matched, judged against the noise learned so far.",
                                        ("route",), registry=r)
        self.shadow_noise = Counter("strangler_shadow_noise_comparisons_total",
                                    "Legacy-vs-legacy comparisons for noise learning, by "
                                    "result (same, differed, unusable, error, skipped).",
                                    ("route", "result"), registry=r)
        self.shadow_noise_paths = Gauge("strangler_shadow_noise_paths",
                                        "Response paths learned as noise.", ("route",),
                                        registry=r)
        self.connections_open = Gauge("strangler_connections_open",
                                      "Client connections open on the proxy listener.",
                                      registry=r)
        self.connections_closed = Counter(
            "strangler_connections_closed_total",
            "Client connections the gateway closed, by reason: header_timeout (the request "
            "head took too long), idle, body_timeout, too_many_connections (refused at "
            "once), bad_request (the HTTP parser refused the request).", ("reason",),
            registry=r)
        self.blocked = Counter("strangler_blocked_requests_total",
                               "Requests for a blocked path (gateway.blocked_paths), answered "
                               "404 by the gateway, by the pattern that matched.",
                               ("pattern",), registry=r)
        self.host_refused = Counter("strangler_host_refused_total",
                                    "Requests refused for their Host: bad_host (not a valid "
                                    "host[:port]), unknown_host (not one this listener "
                                    "serves), by listener (public, admin).",
                                    ("listener", "reason"), registry=r)
        self.upstream_healthy = Gauge("strangler_upstream_healthy", "1 when healthy.",
                                      ("pool", "upstream"), registry=r)
        self.live = LiveStats()
        """The last seconds per route, for the dashboard (``gateway.observe.live_stats``)."""
        self._skipped: dict[str, list[int]] = {}
        self._req: dict[tuple[str, str, int, str],
                        tuple[list[int], list[float], Recorder, list[int]]] = {}

    def observe_request(self, route: str, backend: str, status: int, seconds: float,
                        reason: str) -> None:
        """One answer: counted by status, timed, recorded for the dashboard, and its
        decision counted with its reason (``stage_new``, ``canary_out``,
        ``fallback:new_5xx``, ``breaker_open``...). One cached tuple per combination."""
        key = (route, backend, status, reason)
        cells = self._req.get(key)
        if cells is None:
            hot = self._per_request
            cells = self._req[key] = (hot.cell(hot.requests, (route, backend, str(status))),
                                      hot.timing(route, backend),
                                      self.live.recorder(route, backend, status),
                                      hot.cell(hot.decisions, (route, backend, reason)))
        cells[0][0] += 1
        timing = cells[1]
        timing[bisect_left(_BUCKETS, seconds)] += 1
        timing[-1] += seconds
        cells[2](seconds)
        cells[3][0] += 1

    def flag_evaluated(self, route: str, in_canary: bool) -> None:
        self.flag_evaluations.labels(route, "in" if in_canary else "out").inc()

    def session(self, op: str, reason: str) -> None:
        self.session_ops.labels(op, reason).inc()

    def lock(self, outcome: str, waited_s: float) -> None:
        self.lock_acquired.labels(outcome).inc()
        self.lock_wait.observe(waited_s)

    def push_skipped(self, reason: str) -> None:
        cell = self._skipped.get(reason)
        if cell is None:  # on the hot path: one cell per reason, made once
            cell = self._skipped[reason] = self._per_request.cell(self._per_request.skipped,
                                                                   (reason,))
        cell[0] += 1

    def stale_detected(self, kind: str) -> None:
        self.stale.labels(kind).inc()

    def session_budget_exhausted(self, stage: str) -> None:
        self.budget_exhausted.labels(stage).inc()

    def session_redis_time(self, seconds: float) -> None:
        self.redis_time.observe(seconds)

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason).inc()

    def unbridgeable(self, reason: str) -> None:
        self.unbridgeable_total.labels(reason).inc()

    def merge_conflict(self, field: str) -> None:
        self.merge_conflicts.labels(field).inc()

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
