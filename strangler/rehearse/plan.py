"""A rehearsal plan (YAML), parsed once into frozen, typed objects.

Validated like config.yaml: unknown keys are refused and every error names
its key path (``stages[1].gates.p99_ms.cart: must be > 0``). A second pass
checks the plan against the gateway's config: route names, groups that a
stage would split, fault targets. Durations can be scaled (``--scale 0.1``)
so the same file runs quickly in a test.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

from flags.model import Stage
from gateway.settings import Config
from strangler.rehearse.plan_steps import Checks, Database, Journey, Login

Int = Annotated[int, Strict()]
Seconds = Annotated[float, Field(gt=0)]
FaultAction = Literal["stop_new", "slow_new", "stop_legacy", "stop_redis"]


class PlanError(Exception):
    """The plan is unreadable or invalid; ``str()`` lists every problem by key path."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Think(_Frozen):
    """Milliseconds, uniform in [min, max]."""

    min: float = Field(100, ge=0)
    max: float = Field(500, ge=0)

    @model_validator(mode="after")
    def _order(self) -> Think:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self


class Users(_Frozen):
    count: Int = Field(10, gt=0, le=2000)
    think_ms: Think = Think()
    """Pause between two journeys of one user."""
    ramp_s: float = Field(0, ge=0)
    """Users start evenly spread over this many seconds from the run's start."""
    usernames: tuple[str, ...] = ()
    """Accounts the users log in as (with ``login``), round robin (each user has its own
    session); none: the login step alone (``user.username`` is null)."""
    password_env: str | None = None
    """Environment variable holding the accounts' password (used when set)."""
    password_file: str | None = None
    """A file holding it (first line), when the variable is not set."""
    password: str | None = None
    """The password itself: only for public demo accounts (a seed's, documented)."""
    timeout_s: float = Field(10, gt=0)
    """A request without an answer after this long counts as a timeout."""


class RouteChange(_Frozen):
    stage: Stage
    percent: Int | None = Field(None, ge=0, le=100)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        """``new`` or ``canary 10`` (``canary 10%``) for ``{stage: canary, percent: 10}``."""
        if isinstance(raw, str):
            m = re.fullmatch(r"\s*([a-z]+)(?:\s+(\d+)\s*%?)?\s*", raw)
            if m is None:
                raise ValueError(f"{raw!r}: write a stage ('new') or 'canary 10'")
            return {"stage": m[1], "percent": int(m[2]) if m[2] else None}
        return raw

    @model_validator(mode="after")
    def _percent(self) -> RouteChange:
        if self.stage is Stage.CANARY and self.percent is None:
            raise ValueError("canary needs a percent")
        if self.stage is not Stage.CANARY and self.percent is not None:
            raise ValueError("percent applies to the canary stage only")
        return self

    def text(self) -> str:
        return f"canary {self.percent}%" if self.stage is Stage.CANARY else self.stage.value


class Gates(_Frozen):
    """SLO gates, judged over the stage so far at each checkpoint and at its end."""

    error_rate: float | None = Field(None, ge=0, le=1)
    """Share of the users' requests answered 5xx or not at all."""
    p99_ms: dict[str, Seconds] | None = None
    """99th percentile latency the users saw, by route (``all``: every request)."""
    fallback_rate: float | None = Field(None, ge=0, le=1)
    """strangler_fallbacks_total / strangler_requests_total over the stage (gateway /metrics)."""
    session_continuity: bool = True
    """No user logged out, no finding of any integrity check made during the stage."""
    rollback_s: float | None = Field(None, gt=0)
    """Drill stages: seconds until the gateway serves nothing from new."""
    min_requests: Int = Field(20, gt=0)
    """Latency and error gates judge a window only once it holds this many requests."""

    @model_validator(mode="before")
    @classmethod
    def _all_routes(cls, raw: Any) -> Any:
        """``p99_ms: 800`` is ``p99_ms: {all: 800}``."""
        if isinstance(raw, dict) and isinstance(raw.get("p99_ms"), int | float) \
                and not isinstance(raw.get("p99_ms"), bool):
            return {**raw, "p99_ms": {"all": raw["p99_ms"]}}
        return raw

    def merged(self, override: Gates | None) -> Gates:
        if override is None:
            return self
        data = self.model_dump()
        data.update({k: getattr(override, k) for k in override.model_fields_set})
        return Gates.model_validate(data)


class StageSpec(_Frozen):
    name: str = Field(min_length=1, max_length=80)
    duration_s: Seconds
    routes: dict[str, RouteChange] = Field(default_factory=dict)
    """Route changes applied through the admin API when the stage starts."""
    rollback_all: bool = False
    """A drill: kill switch on, then every route to legacy; the time until nothing is
    served by new is measured (gate ``rollback_s``)."""
    gates: Gates | None = None
    """Merged over the plan's ``gates`` (keys given here win)."""

    @model_validator(mode="after")
    def _drill(self) -> StageSpec:
        if self.rollback_all and self.routes:
            raise ValueError("a rollback_all stage moves every route itself: drop 'routes'")
        return self


class FaultSpec(_Frozen):
    at_s: float = Field(ge=0)
    """Seconds after the run's start."""
    duration_s: Seconds
    """Undone after this long."""
    action: FaultAction
    target: str | None = None
    """Instance or node id; default: every new instance (slow_new), else the first one."""
    delay_ms: float | None = Field(None, gt=0)
    """slow_new: latency added to every response of the instance."""
    mode: Literal["kill", "pause"] | None = None
    """stop_*: kill (SIGKILL, restarted after) or pause (SIGSTOP, resumed after).
    Default: kill, except pause for Redis (a killed private Redis comes back empty)."""

    @model_validator(mode="after")
    def _fields(self) -> FaultSpec:
        if self.action == "slow_new" and self.delay_ms is None:
            raise ValueError("slow_new needs delay_ms")
        if self.action != "slow_new" and self.delay_ms is not None:
            raise ValueError("delay_ms applies to slow_new only")
        if self.action == "slow_new" and self.mode is not None:
            raise ValueError("mode applies to stop_* actions only")
        if self.action == "stop_redis" and self.target is not None:
            raise ValueError("stop_redis has no target")
        return self

    @property
    def stop_mode(self) -> str:
        return self.mode or ("pause" if self.action == "stop_redis" else "kill")


class OnBreach(_Frozen):
    action: Literal["rollback", "kill_switch"] = "rollback"
    """rollback: re-apply the previous stage's routes and stop advancing;
    kill_switch: every route to legacy at once."""
    observe_s: float = Field(5, ge=0)
    """Load keeps running this long after the action, to show the recovery."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        return {"action": raw} if isinstance(raw, str) else raw


class Plan(_Frozen):
    name: str = Field(min_length=1, max_length=120)
    description: str = ""
    users: Users = Users()
    login: Login | None = None
    """How a user starts a session; none: the users are anonymous."""
    model: dict[str, Any] = Field(default_factory=dict)
    """Each user's model at the start (see model.py)."""
    journeys: dict[str, Journey] = Field(min_length=1)
    """name -> a weighted sequence of HTTP steps."""
    checks: Checks = Checks()
    databases: dict[str, Database] = Field(default_factory=dict)
    """Databases the SQL checks name; ``stack`` is the gateway config's database.url."""
    gates: Gates = Gates()
    """Gates of every stage; a stage's own ``gates`` override them key by key."""
    stages: tuple[StageSpec, ...] = Field(min_length=1)
    faults: tuple[FaultSpec, ...] = ()
    on_breach: OnBreach = OnBreach()
    check_interval_s: float = Field(2, gt=0)
    """How often the gates of the running stage are judged."""

    @model_validator(mode="after")
    def _some_journey(self) -> Plan:
        if not any(j.weight > 0 for j in self.journeys.values()):
            raise ValueError("journeys: at least one journey needs a weight > 0")
        return self

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.stages)

    @property
    def is_drill(self) -> bool:
        return any(s.rollback_all for s in self.stages)

    def stage_gates(self, i: int) -> Gates:
        return self.gates.merged(self.stages[i].gates)

    def scaled(self, factor: float) -> Plan:
        """Every duration times ``factor`` (latency limits and delays are not durations).

        Copies, not a dump and re-parse: which gate keys a stage set must survive."""
        return self.model_copy(update={
            "users": self.users.model_copy(update={"ramp_s": self.users.ramp_s * factor}),
            "on_breach": self.on_breach.model_copy(
                update={"observe_s": self.on_breach.observe_s * factor}),
            "check_interval_s": max(0.5, self.check_interval_s * factor),
            "stages": tuple(s.model_copy(update={"duration_s": s.duration_s * factor})
                            for s in self.stages),
            "faults": tuple(f.model_copy(update={"at_s": f.at_s * factor,
                                                 "duration_s": f.duration_s * factor})
                            for f in self.faults),
        })

    def with_users(self, count: int) -> Plan:
        return self.model_copy(update={"users": self.users.model_copy(update={"count": count})})


_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "missing": "required",
    "too_short": "needs at least {min_length} item(s)",
    "extra_forbidden": "unknown key",
}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "tagged-")) or part.endswith("]"):
            continue  # pydantic's union branch names
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _message(err: Any) -> str:
    template = _MESSAGES.get(err["type"])
    if template is not None:
        return template.format(**(err.get("ctx") or {}))
    return str(err["msg"]).removeprefix("Value error, ")


def _follows(err: Any, errors: list[Any]) -> bool:
    """A list 'too short' only because one of its items was refused (said already)."""
    loc = tuple(err["loc"])
    return err["type"] == "too_short" and any(
        tuple(e["loc"])[:len(loc)] == loc and len(e["loc"]) > len(loc) for e in errors)


def parse(data: Any, source: str = "plan") -> Plan:
    """Validate a loaded YAML document; raise PlanError naming every bad key."""
    if not isinstance(data, dict):
        raise PlanError(f"{source}: the top level must be a mapping")
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        lines = sorted({f"{_path(e['loc'])}: {_message(e)}" for e in errors
                        if not _follows(e, errors)})
        raise PlanError(f"{source}: invalid plan\n  " + "\n  ".join(lines)) from None
    problems = _cross_problems(plan)
    if problems:
        raise PlanError(f"{source}: invalid plan\n  " + "\n  ".join(problems))
    return plan


def _cross_problems(plan: Plan) -> list[str]:
    """What one part of the plan names that another part lacks."""
    problems = []
    if plan.users.usernames and plan.login is None:
        problems.append("users.usernames: accounts need a login step (login)")
    for key in plan.login.resets if plan.login else ():
        if key not in plan.model:
            problems.append(f"login.resets: {key!r} is not a key of model")
    for i, check in enumerate(plan.checks.sql):
        if check.database != "stack" and check.database not in plan.databases:
            problems.append(f"checks.sql[{i}].database: no database {check.database!r} "
                            f"(known: stack{''.join(', ' + d for d in plan.databases)})")
        if not isinstance(check.expect, str) and check.expect.captured not in plan.model:
            problems.append(f"checks.sql[{i}].expect.captured: {check.expect.captured!r} "
                            "is not a key of model")
    for i, http in enumerate(plan.checks.http):
        if http.model is not None and http.model.split(".")[0] not in plan.model:
            problems.append(f"checks.http[{i}].model: {http.model!r} is not in model")
    return problems


def password(users: Users) -> str | None:
    """The accounts' password: ``password_env`` if set, else ``password_file``, else
    ``password``; None when the plan gives none. Raises PlanError naming the key."""
    if users.password_env and os.environ.get(users.password_env):
        return os.environ[users.password_env]
    if users.password_file:
        try:
            return Path(users.password_file).read_text().splitlines()[0]
        except (OSError, IndexError) as exc:
            raise PlanError(f"users.password_file: cannot read {users.password_file}: "
                            f"{exc}") from None
    if users.password is None and users.password_env:
        raise PlanError(f"users.password_env: ${users.password_env} is not set")
    return users.password


def load(path: Path, cfg: Config) -> Plan:
    plan = parse(read(path), str(path))
    problems = check_against(plan, cfg)
    if problems:
        raise PlanError(f"{path}: invalid plan\n  " + "\n  ".join(problems))
    return plan


def read(path: Path, _within: tuple[Path, ...] = ()) -> Any:
    """A plan file's YAML with its ``include:`` resolved.

    ``include: FILE`` (or a list of files, relative to the including one) puts the
    top-level keys of those files under the plan's own: what an app is (users, login,
    model, journeys, checks, databases) written once, and each plan only its stages,
    gates and faults. A key the plan sets itself replaces the included one whole (a plan
    with its own ``users`` uses them, not the included ``users``); two included files
    may not set the same key. Included files may include others, never in a circle.
    """
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        what = f"{_within[-1]}: include {path}: cannot read it" if _within \
            else f"{path}: cannot read the plan"
        raise PlanError(f"{what}: {exc}") from None
    if not isinstance(data, dict) or "include" not in data:
        return data
    names = data.pop("include")
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise PlanError(f"{path}: invalid plan\n  include: a file name or a list of them")
    merged: dict[str, Any] = {}
    came_from: dict[str, str] = {}
    for i, name in enumerate(names):
        part_path = (path.parent / name).resolve()
        if part_path in (*_within, path.resolve()):
            raise PlanError(f"{path}: invalid plan\n  include[{i}]: {name} includes itself")
        part = read(part_path, (*_within, path.resolve()))
        if not isinstance(part, dict):
            raise PlanError(f"{path}: invalid plan\n  include[{i}]: {name}: "
                            "the top level must be a mapping")
        for key in part:
            if key in came_from:
                raise PlanError(f"{path}: invalid plan\n  include[{i}]: {name} sets {key}, "
                                f"as {came_from[key]} does")
            came_from[key] = name
        merged.update(part)
    merged.update(data)
    return merged


def check_against(plan: Plan, cfg: Config) -> list[str]:
    """What the plan names that the gateway's config does not have."""
    movable = {r.name for r in cfg.routes if not r.legacy_only}
    known = ", ".join(sorted(movable))
    groups = {r.name: r.group for r in cfg.routes if r.group}
    problems = []
    for i, stage in enumerate(plan.stages):
        for route, change in stage.routes.items():
            if route not in movable:
                why = "is legacy_only" if route in {r.name for r in cfg.routes} else "unknown route"
                problems.append(f"stages[{i}].routes.{route}: {why} (movable: {known})")
                continue
            for other, other_change in stage.routes.items():
                if other < route and groups.get(route) and groups.get(other) == groups[route] \
                        and other_change != change:
                    problems.append(f"stages[{i}].routes.{route}: group {groups[route]!r} "
                                    f"would be split ({other}: {other_change.text()})")
        for route in (plan.stage_gates(i).p99_ms or {}):
            if route != "all" and route not in {r.name for r in cfg.routes}:
                problems.append(f"stages[{i}].gates.p99_ms.{route}: unknown route "
                                f"(known: all, {', '.join(r.name for r in cfg.routes)})")
        if plan.stage_gates(i).rollback_s is not None and not stage.rollback_all:
            problems.append(f"stages[{i}].gates.rollback_s: only a rollback_all stage has one")
    problems += _fault_problems(plan, cfg)
    return problems


def _fault_problems(plan: Plan, cfg: Config) -> list[str]:
    problems = []
    ids = {"stop_new": [n.id for n in cfg.new.instances],
           "slow_new": [n.id for n in cfg.new.instances],
           "stop_legacy": [n.id for n in cfg.legacy.nodes]}
    for i, fault in enumerate(plan.faults):
        pool = ids.get(fault.action)
        if pool is not None and fault.target is not None and fault.target not in pool:
            problems.append(f"faults[{i}].target: no {fault.target!r} "
                            f"(known: {', '.join(pool)})")
        if fault.at_s >= plan.duration_s:
            problems.append(f"faults[{i}].at_s: the run ends at {plan.duration_s:g} s")
    return problems
