"""gateway.observe.live_stats: the dashboard's rolling per-route figures (clock passed in)."""

from __future__ import annotations

import random

import pytest

from gateway.observe.live_stats import (
    BUCKETS_PER_OCTAVE,
    MAX_LATENCY_S,
    MIN_LATENCY_S,
    N_BINS,
    Figures,
    LiveStats,
    bin_of,
    bin_upper_s,
)
from gateway.observe.metrics import Metrics

STEP = 2 ** (1 / BUCKETS_PER_OCTAVE)


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def one(stats: LiveStats, route: str = "cart", span: int | None = None) -> Figures:
    [figures] = stats.snapshot([route], span)
    return figures


def test_counts_by_backend_rates_share_and_errors() -> None:
    clock = Clock(1000.5)
    stats = LiveStats(window_s=10, clock=clock)
    for _ in range(30):
        stats.observe("cart", "legacy", 200, 0.002)
    for _ in range(10):
        stats.observe("cart", "new", 200, 0.003)
    stats.observe("cart", "new", 503, 0.004)
    stats.observe("cart", "legacy", 502, 0.004)
    clock.t = 1001.0  # 9 whole seconds of the window have not happened yet: rates cover 9.0 s
    f = one(stats)
    assert f.requests == {"legacy": 31, "new": 11}
    assert f.errors == {"legacy": 1, "new": 1}
    assert f.error_rate == pytest.approx(2 / 42)
    assert f.new_share == pytest.approx(11 / 42)
    assert f.window_s == pytest.approx(9.0)
    body = f.to_dict()
    assert body["rps"] == {"legacy": round(31 / 9, 2), "new": round(11 / 9, 2)}
    assert body["route"] == "cart" and body["error_rate"] == pytest.approx(2 / 42)


def test_a_route_never_seen_and_an_idle_route_have_no_rates_shares_or_p99() -> None:
    clock = Clock()
    stats = LiveStats(clock=clock)
    stats.observe("cart", "legacy", 200, 0.001)
    clock.t += 60
    for f in stats.snapshot(["cart", "catalog"]):
        assert f.total == 0 and f.new_share is None and f.error_rate is None
        assert f.p99_s == {"legacy": None, "new": None, "all": None}
        assert f.to_dict()["p99_ms"] is None


def test_the_window_rolls_one_second_at_a_time() -> None:
    clock = Clock(100.0)
    stats = LiveStats(window_s=10, clock=clock)
    for second in range(100, 120):  # one legacy request a second, then new from 110 on
        clock.t = second + 0.5
        stats.observe("cart", "legacy" if second < 110 else "new", 200, 0.001)
        f = one(stats)
        assert f.total == min(second - 99, 10)  # never more than the last 10 seconds
    clock.t = 119.5
    f = one(stats)
    assert f.requests == {"legacy": 0, "new": 10}, "seconds 100..109 have left the window"
    clock.t = 114.5
    # the clock never goes back in a gateway; this only reads what the ring holds for 105..114
    assert one(stats).requests == {"legacy": 0, "new": 5}
    clock.t = 119.5
    recent = one(stats, span=2)
    assert recent.requests == {"legacy": 0, "new": 2} and recent.window_s == pytest.approx(1.5)
    clock.t = 125.0
    assert one(stats).requests == {"legacy": 0, "new": 4}  # 116..119 are still in 116..125


def test_a_flip_shows_in_the_recent_split_at_once_and_in_the_window_gradually() -> None:
    clock = Clock(50.0)
    stats = LiveStats(window_s=10, clock=clock)
    for tick in range(120):  # 10 requests a second, flipped to new at t = 60
        clock.t = 50.0 + tick / 10
        stats.observe("cart", "new" if clock.t >= 60 else "legacy", 200, 0.001)
    clock.t = 62.0
    stats.observe("cart", "new", 200, 0.001)
    assert one(stats, span=2).new_share == 1.0
    assert 0.1 < (one(stats).new_share or 0) < 0.4


def test_p99_is_the_upper_edge_of_its_bin_within_one_bin_of_the_truth() -> None:
    rng = random.Random(7)
    clock = Clock()
    stats = LiveStats(clock=clock)
    samples = [rng.lognormvariate(-5.5, 0.8) for _ in range(5000)]  # median ~4 ms
    for i, s in enumerate(samples):
        stats.observe("cart", "new" if i % 2 else "legacy", 200, s)
    true_p99 = sorted(samples)[int(0.99 * len(samples)) - 1]
    p99 = one(stats).p99_s["all"]
    assert p99 is not None and true_p99 <= p99 <= true_p99 * STEP * STEP
    by_backend = one(stats).p99_s
    for b in ("legacy", "new"):
        values = sorted(s for i, s in enumerate(samples) if (i % 2) == (b == "new"))
        truth = values[int(0.99 * len(values)) - 1]
        got = by_backend[b]
        assert got is not None and truth <= got <= truth * STEP * STEP


def test_p99_is_not_fooled_by_a_few_slow_requests_or_hidden_by_many() -> None:
    clock = Clock()
    stats = LiveStats(clock=clock)
    for _ in range(995):
        stats.observe("cart", "legacy", 200, 0.001)
    for _ in range(5):
        stats.observe("cart", "legacy", 200, 2.0)
    assert one(stats).p99_s["all"] == pytest.approx(bin_upper_s(bin_of(0.001)))
    for _ in range(20):
        stats.observe("cart", "legacy", 200, 2.0)
    p99 = one(stats).p99_s["all"]
    assert p99 is not None and 2.0 <= p99 <= 2.0 * STEP


@pytest.mark.parametrize("seconds", [0.0, -1.0, 1e-9, MIN_LATENCY_S, 0.0001234, 0.01, 1.0,
                                     MAX_LATENCY_S, 1e6])
def test_the_hot_path_and_bin_of_agree_and_every_latency_has_a_bin(seconds: float) -> None:
    stats = LiveStats(clock=Clock())
    stats.observe("cart", "new", 200, seconds)
    i = bin_of(seconds)
    assert 0 <= i < N_BINS
    assert one(stats).p99_s["new"] == pytest.approx(bin_upper_s(i))
    if MIN_LATENCY_S < seconds < MAX_LATENCY_S:
        assert bin_upper_s(i) / STEP <= seconds * (1 + 1e-9) and seconds < bin_upper_s(i)


def test_memory_is_bounded_by_routes_and_window_not_by_traffic_or_time() -> None:
    clock = Clock(0.0)
    stats = LiveStats(window_s=10, clock=clock)
    rng = random.Random(1)
    for tick in range(20_000):  # 2000 seconds of traffic at 10 requests a second, 3 routes
        clock.t = tick / 10
        stats.observe(("cart", "catalog", "auth")[tick % 3], ("legacy", "new")[tick % 2],
                      rng.choice((200, 404, 503)), rng.expovariate(200))
    assert len(stats._routes) == 3
    for window in stats._routes.values():
        assert len(window._ring) == 10
        for s in window._ring:
            assert len(s.requests) == len(s.errors) == 2
            assert all(len(h) == N_BINS for h in s.latency)
    last_ten_seconds = sum(1 for tick in range(19_900, 20_000) if tick % 3 == 0)
    assert one(stats).total == last_ten_seconds == 33


def test_an_unknown_backend_is_refused_when_the_recorder_is_made() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        LiveStats().recorder("cart", "elsewhere", 200)
    with pytest.raises(ValueError):
        LiveStats(window_s=0)


def test_metrics_observe_request_feeds_the_live_figures() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.observe_request("cart", "new", 200, 0.002, "stage_new")
    metrics.observe_request("cart", "legacy", 500, 0.002, "stage_legacy")
    [f] = metrics.live.snapshot(["cart"])
    assert f.requests == {"legacy": 1, "new": 3} and f.errors == {"legacy": 1, "new": 0}
    assert b'strangler_requests_total{backend="new",route="cart",status="200"} 3.0' in \
        metrics.render()
