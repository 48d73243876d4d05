"""strangler.rehearse.plan: a broken plan is refused with the key path of each problem."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.settings import load as load_config
from strangler.rehearse.plan import (
    Plan,
    PlanError,
    RouteChange,
    check_against,
    load,
    parse,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "config.yaml")
PLANS = sorted((ROOT / "plans").glob("*.yaml"))
BASE: dict[str, Any] = {
    "name": "t",
    "journeys": {"look": {"weight": 1, "steps": [{"path": "/api/products"}]}},
    "gates": {"error_rate": 0.01, "p99_ms": {"all": 900}},
    "stages": [{"name": "one", "duration_s": 10, "routes": {"catalog": "canary 10"}},
               {"name": "two", "duration_s": 20, "routes": {"cart": "new"},
                "gates": {"p99_ms": {"cart": 500}}}],
}


def refused(mutate: Callable[[dict[str, Any]], None]) -> str:
    data = copy.deepcopy(BASE)
    mutate(data)
    with pytest.raises(PlanError) as info:
        plan = parse(data, "plan.yaml")
        problems = check_against(plan, CONFIG)
        if problems:
            raise PlanError("\n".join(problems))
    return str(info.value)


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_every_example_plan_is_valid_against_the_demo_config(path: Path) -> None:
    plan = load(path, CONFIG)
    assert plan.stages and plan.duration_s > 0


def test_the_examples_are_the_three_the_issue_asks_for() -> None:
    names = {p.name for p in PLANS}
    assert {"cutover-catalog-then-cart.yaml", "fault-triggers-rollback.yaml",
            "rollback-drill.yaml"} <= names
    assert load(ROOT / "plans" / "fault-triggers-rollback.yaml", CONFIG).faults
    assert load(ROOT / "plans" / "rollback-drill.yaml", CONFIG).is_drill


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["stages"][1]["gates"]["p99_ms"].update(cart=0),
     "stages[1].gates.p99_ms.cart: must be > 0"),
    (lambda d: d["stages"][0].update(duration_s=-1), "stages[0].duration_s: must be > 0"),
    (lambda d: d["stages"][0].update(colour="red"), "stages[0].colour: unknown key"),
    (lambda d: d.update(surprise=1), "surprise: unknown key"),
    (lambda d: d["stages"][0].pop("name"), "stages[0].name: required"),
    (lambda d: d.update(gates={"error_rate": 2}), "gates.error_rate: must be <= 1"),
    (lambda d: d.update(users={"count": 0}), "users.count: must be > 0"),
    (lambda d: d.update(users={"think_ms": {"min": 500, "max": 100}}),
     "users.think_ms: max must be >= min"),
    (lambda d: d["journeys"]["look"]["steps"][0].update(dance=1),
     "journeys.look.steps[0].dance: unknown key"),
    (lambda d: d["journeys"]["look"].update(weight=0),
     "journeys: at least one journey needs a weight > 0"),
    (lambda d: d.pop("journeys"), "journeys: required"),
    (lambda d: d["stages"][0]["routes"].update(catalog="canary"),
     "stages[0].routes.catalog: canary needs a percent"),
    (lambda d: d["stages"][0]["routes"].update(catalog="new 30"),
     "stages[0].routes.catalog: percent applies to the canary stage only"),
    (lambda d: d["stages"][0]["routes"].update(catalog={"stage": "sideways"}),
     "stages[0].routes.catalog.stage: Input should be"),
    (lambda d: d.update(on_breach="panic"), "on_breach.action: Input should be"),
    (lambda d: d.update(faults=[{"at_s": 1, "duration_s": 2, "action": "slow_new"}]),
     "faults[0]: slow_new needs delay_ms"),
    (lambda d: d.update(stages=[]), "stages: needs at least 1 item(s)"),
])
def test_a_bad_plan_names_the_key(mutate: Callable[[dict[str, Any]], None],
                                  expected: str) -> None:
    assert expected in refused(mutate)


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["stages"][0]["routes"].update(kart="new"),
     "stages[0].routes.kart: unknown route (movable: auth, cart, catalog, checkout, orders)"),
    (lambda d: d["stages"][0]["routes"].update(default="new"),
     "stages[0].routes.default: is legacy_only"),
    (lambda d: d["stages"][1]["routes"].update(checkout="legacy"),
     "stages[1].routes.checkout: group 'shopping' would be split (cart: new)"),
    (lambda d: d["stages"][1]["gates"]["p99_ms"].update(kart=100),
     "stages[1].gates.p99_ms.kart: unknown route"),
    (lambda d: d["stages"][1]["gates"].update(rollback_s=2),
     "stages[1].gates.rollback_s: only a rollback_all stage has one"),
    (lambda d: d.update(faults=[{"at_s": 1, "duration_s": 2, "action": "stop_new",
                                 "target": "n9"}]),
     "faults[0].target: no 'n9' (known: n1, n2)"),
    (lambda d: d.update(faults=[{"at_s": 30, "duration_s": 2, "action": "stop_redis"}]),
     "faults[0].at_s: the run ends at 30 s"),
])
def test_a_plan_is_checked_against_the_gateway_config(
        mutate: Callable[[dict[str, Any]], None], expected: str) -> None:
    assert expected in refused(mutate)


def test_a_group_named_whole_and_alike_is_fine() -> None:
    data = copy.deepcopy(BASE)
    data["stages"][1]["routes"]["checkout"] = "new"
    assert check_against(parse(data), CONFIG) == []


def test_shorthands() -> None:
    assert RouteChange.model_validate("canary 25%") == RouteChange.model_validate(
        {"stage": "canary", "percent": 25})
    plan = parse({**BASE, "gates": {"p99_ms": 700}, "on_breach": "kill_switch"})
    assert plan.gates.p99_ms == {"all": 700}
    assert plan.on_breach.action == "kill_switch"


def test_stage_gates_override_the_plan_gates_key_by_key() -> None:
    plan = parse(BASE)
    gates = plan.stage_gates(1)
    assert gates.p99_ms == {"cart": 500}
    assert gates.error_rate == 0.01  # not named in the stage: the plan's


def test_scaling_keeps_what_a_stage_set_and_scales_every_duration() -> None:
    data = copy.deepcopy(BASE)
    data["faults"] = [{"at_s": 12, "duration_s": 5, "action": "slow_new", "delay_ms": 800}]
    data["users"] = {"ramp_s": 4}
    plan = parse(data).scaled(0.1)
    assert [s.duration_s for s in plan.stages] == pytest.approx([1.0, 2.0])
    assert (plan.faults[0].at_s, plan.faults[0].duration_s) == pytest.approx((1.2, 0.5))
    assert plan.faults[0].delay_ms == 800  # a delay is not a duration
    assert plan.users.ramp_s == pytest.approx(0.4)
    assert plan.stage_gates(1).error_rate == 0.01  # the stage did not set it: still inherited
    assert plan.with_users(3).users.count == 3


def test_the_normalized_plan_is_plain_json() -> None:
    plan = load(ROOT / "plans" / "cutover-catalog-then-cart.yaml", CONFIG)
    dumped = plan.model_dump(mode="json")
    assert dumped["stages"][0]["routes"]["catalog"] == {"stage": "canary", "percent": 25}
    assert Plan.model_validate(yaml.safe_load(yaml.safe_dump(dumped))) == plan
