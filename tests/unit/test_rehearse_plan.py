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
    Users,
    check_against,
    load,
    parse,
    password,
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


def _step(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["journeys"]["look"]["steps"][0].update(fields)


def _with_checks(d: dict[str, Any], **checks: Any) -> None:
    d["model"] = {"cart": {}, "placed": []}
    d["checks"] = checks


SQL = {"name": "rows", "query": "SELECT 1", "expect": {"captured": "placed"}}


@pytest.mark.parametrize(("mutate", "expected"), [
    (_step(path="api/x"), "journeys.look.steps[0].path: must start with /"),
    (_step(path="/api/{vars.}"), "journeys.look.steps[0].path: 'vars.' is not a JMESPath"),
    (_step(body={"a": "{x"}), "journeys.look.steps[0]: '{x': an unmatched brace"),
    (_step(method="FETCH"), "journeys.look.steps[0].method: Input should be"),
    (_step(expect="some"), "journeys.look.steps[0].expect"),
    (_step(vars={"p": "choice("}), "journeys.look.steps[0]: 'choice(' is not a JMESPath"),
    (_step(when="a[?"), "journeys.look.steps[0]: 'a[?' is not a JMESPath"),
    (_step(update=[{"add": "cart.x"}]),
     "journeys.look.steps[0].update[0]: add needs a value (a template) or from"),
    (_step(update=[{"add": "x", "set": "y", "value": 1}]),
     "journeys.look.steps[0].update[0]: name exactly one of set, add, remove, merge"),
    (_step(update=[{"set": "x", "value": 1, "from": "a"}]),
     "journeys.look.steps[0].update[0]: give value or from, not both"),
    (_step(update=[{"set": "x", "value": 1, "colour": 2}]),
     "journeys.look.steps[0].update[0].colour: unknown key"),
    (_step(**{"assert": [{"expr": "a"}]}),
     "journeys.look.steps[0].assert[0]: give model (a model path) or equals"),
    (_step(**{"assert": [{"expr": "a", "equals": 1, "model": "cart"}]}),
     "journeys.look.steps[0].assert[0]: give model (a model path) or equals (a template), "
     "not both"),
    (_step(**{"assert": [{"status": 200, "expr": "a"}]}),
     "journeys.look.steps[0].assert[0]: a status assertion has nothing else"),
    (_step(key_header="Idempotency-Key"),
     "journeys.look.steps[0]: key_header applies to on_no_answer: resend"),
    (_step(key_header="Idempotency-Key", on_no_answer="resend"),
     "journeys.look.steps[0]: key_header 'Idempotency-Key' is not in headers"),
    (_step(on_no_answer="pray"), "journeys.look.steps[0].on_no_answer: Input should be"),
    (_step(check="Cart Check"), "journeys.look.steps[0]: 'Cart Check': a check name"),
    (lambda d: d["journeys"]["look"].update(steps=[]),
     "journeys.look.steps: needs at least 1 item(s)"),
    (lambda d: d.update(users={"usernames": ["ann"]}),
     "users.usernames: accounts need a login step (login)"),
    (lambda d: d.update(login={"path": "/login", "resets": ["cart"]}),
     "login.resets: 'cart' is not a key of model"),
    (lambda d: d.update(login={"path": "/login", "lost_status": "x"}), "login.lost_status"),
    (lambda d: _with_checks(d, http=[{"name": "c", "path": "/x", "expr": "a",
                                      "model": "nothing"}]),
     "checks.http[0].model: 'nothing' is not in model"),
    (lambda d: _with_checks(d, http=[{"name": "c", "path": "/x", "expr": "a",
                                      "equals": 1, "compare": "contains"}]),
     "checks.http[0]: compare: contains needs model"),
    (lambda d: _with_checks(d, http=[{"name": "c", "path": "/x", "expr": "a["}]),
     "checks.http[0]: 'a[' is not a JMESPath"),
    (lambda d: _with_checks(d, sql=[{**SQL, "database": "shop"}]),
     "checks.sql[0].database: no database 'shop' (known: stack)"),
    (lambda d: _with_checks(d, sql=[{**SQL, "expect": {"captured": "orders"}}]),
     "checks.sql[0].expect.captured: 'orders' is not a key of model"),
    (lambda d: _with_checks(d, sql=[{**SQL, "expect": "all_rows"}]), "checks.sql[0].expect"),
    (lambda d: _with_checks(d, sql=[{**SQL, "expect": "no_rows", "keys": "SELECT 1"}]),
     "checks.sql[0]: keys applies to expect: {captured: ...}"),
    (lambda d: _with_checks(d, sql=[SQL, SQL]), "checks: sql: two checks with one name"),
    (lambda d: d.update(databases={"shop": {}}), "databases.shop: give url or url_env"),
    (lambda d: d.update(databases={"shop": {"url": "x", "url_env": "Y"}}),
     "databases.shop: give url or url_env, one of them"),
])
def test_a_bad_journey_login_or_check_names_the_key(mutate: Callable[[dict[str, Any]], None],
                                                    expected: str) -> None:
    assert expected in refused(mutate)


def test_a_full_declared_plan_parses_with_its_shorthands() -> None:
    data = copy.deepcopy(BASE)
    data.update(
        users={"usernames": ["ann"], "password_env": "X"},
        login={"path": "/login", "body": {"u": "{user.username}"}, "expect": 200,
               "resets": ["cart"], "lost_status": 401},
        model={"cart": {}, "placed": []},
        databases={"shop": {"url_env": "SHOP_DB"}},
        checks={"http": [{"name": "cart_ok", "path": "/api/cart", "expr": "items",
                          "model": "cart"}],
                "sql": [{**SQL, "database": "shop"}]})
    data["journeys"]["look"]["steps"][0].update(
        method="POST", headers={"Idempotency-Key": "{uuid()}"}, on_no_answer="resend",
        key_header="Idempotency-Key", expect=201,
        update=[{"add": "placed", "from": "response.id"}, {"remove": "cart.{vars.p}"}],
        **{"assert": [{"status": 201}, {"expr": "a", "equals": None}]})
    plan = parse(data)
    step = plan.journeys["look"].steps[0]
    assert step.expect == (201,) and plan.login is not None and plan.login.lost_status == (401,)
    assert [(u.op, u.has_value) for u in step.update] == [("add", True), ("remove", False)]
    assert len(step.assertions) == 2 and step.assertions[0].status == (201,)
    assert Plan.model_validate(plan.model_dump(mode="json")) == plan  # as report.json has it


def test_the_password_comes_from_env_then_file_then_the_plan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw.txt"
    secret.write_text("from-file\n")
    users = Users(password_env="PLAN_PW_TEST", password_file=str(secret), password="literal")
    monkeypatch.setenv("PLAN_PW_TEST", "from-env")
    assert password(users) == "from-env"
    monkeypatch.delenv("PLAN_PW_TEST")
    assert password(users) == "from-file"
    assert password(Users(password_env="PLAN_PW_TEST", password="literal")) == "literal"
    with pytest.raises(PlanError, match=r"users.password_env: \$PLAN_PW_TEST is not set"):
        password(Users(password_env="PLAN_PW_TEST"))
    with pytest.raises(PlanError, match=r"users\.password_file: cannot read"):
        password(Users(password_file=str(tmp_path / "none")))


@pytest.mark.parametrize("name", ["cutover.yaml", "fault-triggers-rollback.yaml",
                                  "rollback-drill.yaml"])
def test_the_django_trips_plans_are_valid_against_its_config(name: str) -> None:
    trips = ROOT / "examples" / "django_trips"
    plan = load(trips / "plans" / name, load_config(trips / "config.yaml"))
    assert plan.login is not None and plan.login.path == "/accounts/login"
    assert {c.name for c in plan.checks.http} >= {"session_continuity", "state_integrity"}
    assert [c.name for c in plan.checks.sql] == ["bookings_table"]
    book = plan.journeys["book"].steps[-1]
    assert book.on_no_answer == "resend" and book.key_header == "Idempotency-Key"
    assert plan.is_drill == (name == "rollback-drill.yaml")
    assert bool(plan.faults) == (name == "fault-triggers-rollback.yaml")


def test_the_built_in_drill_runs_any_plans_users_journeys_and_checks() -> None:
    from strangler.rehearse.drill import default_plan

    base = load(ROOT / "plans" / "cutover-catalog-then-cart.yaml", CONFIG)
    plan = default_plan(CONFIG, base, 7, 20, False, 2.5)
    assert plan.is_drill and [s.name for s in plan.stages] == ["forward", "rollback"]
    assert plan.stages[0].duration_s == plan.stages[1].duration_s == 10
    assert set(plan.stages[0].routes) == {"auth", "cart", "catalog", "checkout", "orders"}
    assert plan.stage_gates(1).rollback_s == 2.5 and plan.users.count == 7
    assert (plan.journeys, plan.login, plan.checks, plan.model) == \
        (base.journeys, base.login, base.checks, base.model)
    assert check_against(plan, CONFIG) == []
    current = default_plan(CONFIG, base, 7, 20, True, 2.5)
    assert current.stages[0].routes == {}


# ---------------------------------------------------------------- include
APP = {"users": {"count": 3, "usernames": ["ann"]},
       "journeys": {"look": {"weight": 1, "steps": [{"path": "/api/products"}]}},
       "model": {"seen": []}}


def _write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_an_included_app_gives_its_keys_and_the_plan_its_own_win_whole(tmp_path: Path) -> None:
    _write(tmp_path / "apps" / "app.yaml", APP)
    own = {k: v for k, v in BASE.items() if k != "journeys"}
    plan_file = _write(tmp_path / "plan.yaml", {**own, "include": "apps/app.yaml",
                                                "users": {"count": 7}})
    plan = load(plan_file, CONFIG)
    assert plan.journeys.keys() == {"look"} and plan.model == {"seen": []}
    assert plan.users.count == 7
    assert plan.users.usernames == Users().usernames, "the plan's users replace the app's whole"


@pytest.mark.parametrize(("files", "include", "expected"), [
    ({}, "missing.yaml", "missing.yaml: cannot read it"),
    ({"a.yaml": APP, "b.yaml": {"model": {}}}, ["a.yaml", "b.yaml"],
     "include[1]: b.yaml sets model, as a.yaml does"),
    ({"a.yaml": {"include": "plan.yaml"}}, "a.yaml", "includes itself"),
    ({"a.yaml": ["not", "a", "mapping"]}, "a.yaml", "include[0]: a.yaml: the top level"),
    ({}, 5, "include: a file name or a list of them"),
    ({}, [], "include: a file name or a list of them"),
])
def test_a_bad_include_is_refused_by_name(tmp_path: Path, files: dict[str, Any],
                                         include: Any, expected: str) -> None:
    for name, data in files.items():
        _write(tmp_path / name, data)
    plan_file = _write(tmp_path / "plan.yaml", {**BASE, "include": include})
    with pytest.raises(PlanError) as info:
        load(plan_file, CONFIG)
    assert expected in str(info.value)
