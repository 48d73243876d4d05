"""Gate evaluation, the users' statistics and the /metrics reader (pure)."""

from __future__ import annotations

import pytest

from strangler.rehearse import promtext
from strangler.rehearse.gates import Window, breached, evaluate
from strangler.rehearse.plan import Gates
from strangler.rehearse.stats import Recorder, Sample, percentile, summarize


def samples(route: str, ms: list[float], status: int = 200, at: float = 0.0) -> list[Sample]:
    return [Sample(at, at + m / 1000, route, status, "new") for m in ms]


def window(ss: list[Sample], *, gw: float | None = 100, fb: float | None = 0,
           found: int = 0, rollback: float | None = None, final: bool = True) -> Window:
    return Window(summarize(ss), gw, fb, found, rollback, final)


def names(results: list) -> list[str]:  # type: ignore[type-arg]
    return [f"{r.name}.{r.route}" if r.route else r.name for r in results]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.99) == 0.0


def test_every_gate_holds_on_a_healthy_window() -> None:
    gates = Gates(error_rate=0.01, p99_ms={"cart": 500, "all": 800}, fallback_rate=0.05)
    results = evaluate(gates, window(samples("cart", [50] * 100) + samples("catalog", [20] * 50)))
    assert names(results) == ["error_rate", "p99_ms.cart", "p99_ms.all", "fallback_rate",
                              "session_continuity"]
    assert not breached(results)


def test_p99_by_route_breaches_only_its_route() -> None:
    slow_cart = samples("cart", [50] * 90 + [1200] * 10) + samples("catalog", [20] * 100)
    results = evaluate(Gates(p99_ms={"cart": 500, "catalog": 500}), window(slow_cart))
    assert names(breached(results)) == ["p99_ms.cart"]
    cart = next(r for r in results if r.route == "cart")
    assert (cart.observed, cart.samples, cart.limit) == (1200.0, 100, 500)


def test_error_rate_counts_5xx_and_no_answer_not_4xx() -> None:
    ss = samples("cart", [10] * 96) + samples("cart", [10], 502) + samples("cart", [10], 0) \
        + samples("cart", [10] * 2, 404)
    result = evaluate(Gates(error_rate=0.01), window(ss))[0]
    assert result.observed == pytest.approx(0.02)
    assert not result.passed


def test_too_few_requests_are_reported_but_not_judged() -> None:
    few = samples("cart", [5000] * 5, 502)
    results = evaluate(Gates(error_rate=0.01, p99_ms={"cart": 100}, min_requests=20),
                       window(few))
    assert not breached(results)
    assert [r.observed for r in results[:2]] == [1.0, 5000.0]


def test_a_route_without_requests_has_no_figure() -> None:
    result = evaluate(Gates(p99_ms={"orders": 100}), window(samples("cart", [10] * 50)))[0]
    assert (result.observed, result.passed, result.samples) == (None, True, 0)


def test_fallback_rate_comes_from_the_gateway_counters() -> None:
    gates = Gates(fallback_rate=0.05)
    ok = evaluate(gates, window(samples("cart", [10] * 30), gw=200, fb=4))[0]
    bad = evaluate(gates, window(samples("cart", [10] * 30), gw=200, fb=30))[0]
    unknown = evaluate(gates, window(samples("cart", [10] * 30), gw=None, fb=None))[0]
    assert (ok.observed, ok.passed) == (0.02, True)
    assert (bad.observed, bad.passed) == (0.15, False)
    assert (unknown.observed, unknown.passed) == (None, True)


def test_session_continuity_breaches_on_one_finding_whatever_the_count() -> None:
    result = evaluate(Gates(), window(samples("cart", [10] * 2), found=1))[0]
    assert (result.name, result.observed, result.passed) == ("session_continuity", 1, False)
    assert evaluate(Gates(session_continuity=False), window([], found=3)) == []


def test_rollback_time_must_be_measured_by_the_stage_end() -> None:
    gates = Gates(rollback_s=2)
    assert evaluate(gates, window([], rollback=0.4))[-1].passed
    assert not evaluate(gates, window([], rollback=2.5))[-1].passed
    assert evaluate(gates, window([], rollback=None, final=False))[-1].passed  # still timing
    assert not evaluate(gates, window([], rollback=None, final=True))[-1].passed  # never quiet


def test_recorder_windows_by_end_time() -> None:
    rec = Recorder()
    for t in (0.5, 1.2, 1.8, 2.4):
        rec.add(Sample(t - 0.1, t, "cart", 200, "legacy"))
    assert [s.end for s in rec.window(1.0, 2.0)] == [1.2, 1.8]
    assert sorted(rec.per_second()) == [0, 1, 2]
    assert rec.last_new_start(0) is None
    rec.add(Sample(2.5, 2.6, "cart", 200, "new"))
    assert rec.last_new_start(2.0) == 2.5


METRICS = """\
# HELP strangler_requests_total Requests served, by outcome.
# TYPE strangler_requests_total counter
strangler_requests_total{route="cart",backend="legacy",status="200"} 10.0
strangler_requests_total{route="cart",backend="legacy",status="401"} 2.0
strangler_requests_total{route="cart",backend="new",status="200"} 5.0
strangler_requests_total{route="catalog",backend="new",status="200"} 7.0
# HELP strangler_fallbacks_total Requests retried on legacy after new failed.
# TYPE strangler_fallbacks_total counter
strangler_fallbacks_total{route="cart",reason="5xx"} 3.0
strangler_fallbacks_total{route="cart",reason="connect"} 1.0
"""


def test_metrics_are_summed_by_route_and_backend() -> None:
    scrape = promtext.parse(METRICS)
    assert scrape.requests == {("cart", "legacy"): 12.0, ("cart", "new"): 5.0,
                               ("catalog", "new"): 7.0}
    assert scrape.total_fallbacks == 4.0
    assert scrape.backend_total("new") == 12.0


def test_metric_deltas_and_a_restarted_gateway() -> None:
    before = promtext.parse(METRICS)
    after = promtext.parse(METRICS.replace("} 10.0", "} 25.0").replace("} 7.0", "} 2.0"))
    d = promtext.delta(after, before)
    assert d.requests[("cart", "legacy")] == 15.0
    assert d.requests[("catalog", "new")] == 2.0  # went down: counted from zero
    assert promtext.by_route(d) == {"cart": {"legacy": 15, "new": 0},
                                    "catalog": {"legacy": 0, "new": 2}}
