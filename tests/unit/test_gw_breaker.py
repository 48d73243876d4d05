"""gateway.routing.breaker: repeated failures send a route to legacy for a cool-down, then
one probe."""

from __future__ import annotations

import pytest

from gateway.routing.breaker import Breaker, State


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


COOLDOWN = 10.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def changes() -> list[tuple[str, State]]:
    return []


@pytest.fixture
def breaker(clock: Clock, changes: list[tuple[str, State]]) -> Breaker:
    return Breaker("cart", failures=3, cooldown_s=COOLDOWN,
                   on_change=lambda r, s: changes.append((r, s)), clock=clock)


def trip(breaker: Breaker) -> None:
    for _ in range(breaker.threshold):
        assert breaker.allow()
        breaker.failure("connect")
    assert breaker.state is State.OPEN


def probes_allowed(breaker: Breaker, attempts: int = 20) -> int:
    return sum(breaker.allow() for _ in range(attempts))


def test_closed_breaker_lets_everything_through(breaker: Breaker) -> None:
    assert breaker.state is State.CLOSED
    assert probes_allowed(breaker, 100) == 100


def test_opens_after_n_consecutive_failures(breaker: Breaker,
                                            changes: list[tuple[str, State]]) -> None:
    breaker.failure("connect")
    breaker.failure("timeout")
    assert breaker.state is State.CLOSED and breaker.allow()
    breaker.failure("5xx")
    assert breaker.state is State.OPEN
    assert not breaker.allow()
    assert changes == [("cart", State.OPEN)]


def test_failures_separated_by_successes_never_open_it(breaker: Breaker) -> None:
    for _ in range(50):
        breaker.failure("connect")
        breaker.failure("connect")
        breaker.success()
    assert breaker.state is State.CLOSED
    assert breaker.allow()


def test_stays_open_for_the_whole_cool_down(breaker: Breaker, clock: Clock) -> None:
    trip(breaker)
    for _ in range(9):
        clock.advance(1.0)
        assert not breaker.allow()
    clock.advance(0.999)
    assert not breaker.allow()
    assert breaker.state is State.OPEN


def test_exactly_one_half_open_probe_after_the_cool_down(breaker: Breaker, clock: Clock,
                                                         changes: list[tuple[str, State]]) -> None:
    trip(breaker)
    clock.advance(COOLDOWN)
    assert probes_allowed(breaker, 50) == 1
    assert breaker.state is State.HALF_OPEN
    clock.advance(COOLDOWN / 2)
    assert probes_allowed(breaker, 50) == 0  # the probe is still out
    assert changes == [("cart", State.OPEN), ("cart", State.HALF_OPEN)]


def test_probe_success_closes(breaker: Breaker, clock: Clock,
                              changes: list[tuple[str, State]]) -> None:
    trip(breaker)
    clock.advance(COOLDOWN)
    assert breaker.allow()
    breaker.success()
    assert breaker.state is State.CLOSED
    assert probes_allowed(breaker, 50) == 50
    assert changes[-1] == ("cart", State.CLOSED)


def test_after_closing_it_needs_n_fresh_failures_again(breaker: Breaker, clock: Clock) -> None:
    trip(breaker)
    clock.advance(COOLDOWN)
    assert breaker.allow()
    breaker.success()
    breaker.failure("connect")
    breaker.failure("connect")
    assert breaker.state is State.CLOSED
    breaker.failure("connect")
    assert breaker.state is State.OPEN


def test_probe_failure_reopens_for_a_full_cool_down(breaker: Breaker, clock: Clock) -> None:
    trip(breaker)
    clock.advance(COOLDOWN)
    assert breaker.allow()
    clock.advance(2.0)
    breaker.failure("timeout")  # one failure is enough in half-open
    assert breaker.state is State.OPEN
    clock.advance(COOLDOWN - 0.5)
    assert not breaker.allow()
    clock.advance(0.5)
    assert probes_allowed(breaker) == 1


def test_a_lost_probe_does_not_wedge_it(breaker: Breaker, clock: Clock) -> None:
    trip(breaker)
    clock.advance(COOLDOWN)
    assert breaker.allow()  # this probe never reports back (client cancelled)
    clock.advance(COOLDOWN - 0.1)
    assert probes_allowed(breaker) == 0
    clock.advance(0.1)
    assert probes_allowed(breaker) == 1  # a second probe after another cool-down
    breaker.success()
    assert breaker.state is State.CLOSED


def test_breakers_are_independent_per_route(clock: Clock) -> None:
    cart = Breaker("cart", failures=1, cooldown_s=COOLDOWN, clock=clock)
    orders = Breaker("orders", failures=1, cooldown_s=COOLDOWN, clock=clock)
    cart.failure("connect")
    assert not cart.allow()
    assert orders.allow()


def test_a_straggler_success_does_not_cut_the_cool_down_short(breaker: Breaker,
                                                              clock: Clock) -> None:
    assert breaker.allow()  # a slow request goes out while new is healthy ...
    trip(breaker)  # ... new then fails fast three times
    clock.advance(1.0)
    breaker.success()  # the slow one finally answers
    assert breaker.state is State.OPEN
    assert not breaker.allow()
