"""One timer for every exchange: scopes behave like asyncio.timeout_at, a tick late at most."""

from __future__ import annotations

import asyncio

import pytest

from gateway.upstream.deadlines import TICK_S, deadline_at


async def test_work_that_finishes_in_time_is_left_alone() -> None:
    loop = asyncio.get_running_loop()
    async with deadline_at(loop.time() + 5) as scope:
        await asyncio.sleep(0.01)
    assert not scope.expired
    await asyncio.sleep(2 * TICK_S)  # nothing fires afterwards either


async def test_work_past_its_deadline_raises_timeout_about_on_time() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with deadline_at(started + 0.1):
            await asyncio.sleep(10)
    took = loop.time() - started
    assert 0.1 <= took < 0.1 + 3 * TICK_S, took


async def test_many_scopes_each_end_on_their_own_time() -> None:
    loop = asyncio.get_running_loop()

    async def one(limit: float, work: float) -> str:
        try:
            async with deadline_at(loop.time() + limit):
                await asyncio.sleep(work)
            return "done"
        except TimeoutError:
            return "timeout"

    results = await asyncio.gather(*(one(0.15, 0.3 if i % 2 else 0.01) for i in range(200)))
    assert results == ["done" if i % 2 == 0 else "timeout" for i in range(200)]


async def test_someone_elses_cancellation_is_not_turned_into_a_timeout() -> None:
    loop = asyncio.get_running_loop()
    entered = asyncio.Event()

    async def victim() -> None:
        async with deadline_at(loop.time() + 10):
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(victim())
    await entered.wait()
    task.cancel()  # the client went away
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_timeout_leaves_the_task_usable_afterwards() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        async with deadline_at(loop.time() + 0.05):
            await asyncio.sleep(5)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # no cancellation left pending


async def test_the_watcher_runs_only_while_scopes_exist() -> None:
    loop = asyncio.get_running_loop()
    async with deadline_at(loop.time() + 5):
        await asyncio.sleep(0)
    await asyncio.sleep(3 * TICK_S)
    names = [t.get_coro().__qualname__ for t in asyncio.all_tasks()  # type: ignore[union-attr]
             if t is not asyncio.current_task()]
    assert "Deadlines._watch" not in names, names
