from __future__ import annotations

from gateway.routing.budget import RetryBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_retries_are_capped_at_the_ratio_of_requests_plus_the_floor() -> None:
    clock = Clock()
    budget = RetryBudget(0.2, 3, 10, clock)
    for _ in range(100):
        budget.request()
    granted = sum(budget.try_retry() for _ in range(100))
    assert granted == 23  # 20 % of 100 requests + 3


def test_a_quiet_route_can_still_retry_a_few_times() -> None:
    budget = RetryBudget(0.2, 3, 10, Clock())
    budget.request()
    assert [budget.try_retry() for _ in range(5)] == [True, True, True, False, False]


def test_the_budget_refills_as_the_window_slides() -> None:
    clock = Clock()
    budget = RetryBudget(0.2, 0, 10, clock)
    for _ in range(50):
        budget.request()
    assert sum(budget.try_retry() for _ in range(50)) == 10
    clock.now += 11  # every bucket of the old window has expired
    assert not budget.try_retry()
    for _ in range(10):
        budget.request()
    assert sum(budget.try_retry() for _ in range(10)) == 2


def test_requests_in_older_buckets_still_count_within_the_window() -> None:
    clock = Clock()
    budget = RetryBudget(0.5, 0, 10, clock)
    for _ in range(10):
        budget.request()
        clock.now += 0.5
    assert sum(budget.try_retry() for _ in range(10)) == 5
