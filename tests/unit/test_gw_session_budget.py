"""One request's Redis budget: calls run under what is left, a cut is raised once."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.session import budget as session_budget
from gateway.session.budget import BudgetExhausted, RedisBudget
from gateway.settings import ConfigError, parse

DEMO = yaml.safe_load((Path(__file__).resolve().parents[2] / "config.yaml").read_text())


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_each_call_is_charged_what_it_took() -> None:
    clock = Clock()
    budget = RedisBudget(0.3, clock=clock)
    async with budget.spend("read"):
        clock.now += 0.1
    async with budget.spend("lock"):
        clock.now += 0.15
    assert budget.remaining_s == pytest.approx(0.05)
    assert not budget.exhausted


async def test_a_call_past_what_is_left_is_cut_about_on_time_and_counted_once() -> None:
    stages: list[str] = []
    budget = RedisBudget(0.1, stages.append)
    budget.stage = "after_legacy"
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BudgetExhausted) as cut:
        async with budget.spend("write"):
            await asyncio.sleep(10)
    assert loop.time() - started < 1.0
    assert cut.value.status == 503 and cut.value.code == "session_budget_exhausted"
    with pytest.raises(BudgetExhausted):  # nothing left: refused before it starts
        async with budget.spend("release"):
            raise AssertionError("a call ran with no budget left")
    assert budget.remaining_s == 0 and stages == ["after_legacy"]


async def test_an_error_of_the_call_itself_is_not_a_cut() -> None:
    budget = RedisBudget(1.0)
    with pytest.raises(TimeoutError):
        async with budget.spend("read"):
            raise TimeoutError("the client's own timeout")
    assert not budget.exhausted


async def test_the_budget_is_the_request_task_s_own() -> None:
    budget = RedisBudget(1.0)
    session_budget.begin(budget)
    session_budget.stage("to_new")
    assert session_budget.current() is budget and budget.stage == "to_new"

    async def started_by_the_request() -> RedisBudget | None:
        return session_budget.current()  # a shadow copy, a probe, a background release

    assert await session_budget.spawn(started_by_the_request()) is None
    assert session_budget.current() is budget, "the request keeps its own"
    session_budget.begin(None)
    assert session_budget.current() is None


def test_tasks_started_while_a_request_runs_are_spawned_off_its_budget() -> None:
    """The budget is a context variable a plain ``create_task`` would hand on: every task
    the request path starts goes through ``session_budget.spawn``."""
    root = Path(__file__).resolve().parents[2] / "gateway"
    plain = []
    on_the_path = [root / "shadow" / "stage.py", root / "routing" / "pinning.py",
                   root / "runtime" / "app.py", *(root / "session").glob("*.py"),
                   *(root / "pipeline").glob("*.py"), *(root / "edge").glob("*.py"),
                   *(root / "upstream").glob("*.py")]
    for path in on_the_path:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if ("create_task(" in line or "ensure_future(" in line) and "def spawn" not in line:
                plain.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    allowed = {"self._run(command)", "self._watch_keys", "held.store.watch()",
               "pool.run_checks", "pool.check(m)",
               "create_task(coro, name=name, context=context)",  # spawn itself
               "self._serve()",  # a connection's task: made in the listener's context
               "self._watch(), context="}  # the deadline watcher: an empty context
    left = [p for p in plain if not any(a in p for a in allowed)]
    assert left == [], left


@pytest.mark.parametrize(("sync", "expected"), [
    ({"redis_budget_ms": 0}, "gateway.session_sync.redis_budget_ms: Input should be greater"),
    ({"redis_budget_ms": True}, "gateway.session_sync.redis_budget_ms: Input should be a valid "
                                "integer"),
    ({"redis_budget_ms": 5000}, "gateway.session_sync: redis_budget_ms (5000) must not exceed "
                                "budget_ms (3000)"),
])
def test_a_bad_budget_is_refused_naming_its_key(sync: dict[str, Any], expected: str) -> None:
    data = copy.deepcopy(DEMO)
    data["gateway"]["session_sync"] = sync
    with pytest.raises(ConfigError) as info:
        parse(data, "config.yaml")
    assert expected in str(info.value), str(info.value)


def test_the_default_budget() -> None:
    assert parse(copy.deepcopy(DEMO)).gateway.session_sync.redis_budget_ms == 1000
