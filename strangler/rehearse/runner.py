"""The rehearsal engine: stages under load, gates at checkpoints, breach actions.

    preflight (admin API, accounts, database) -> users ramp up -> for each stage:
    apply its route changes (or, in a drill stage, kill switch + every route to
    legacy, timed) -> judge its gates every ``check_interval_s`` -> at its end,
    every user checks itself against the app, gates judged once more ->
    breach: roll back to the previous stage's routes (or kill switch), keep the
    load for ``observe_s``, skip the rest -> users stop, faults undone, final
    checks, the plan's SQL checks -> report.

Times in the report are seconds since the run's start (a monotonic clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.routing.routes import Router
from gateway.settings import Config
from strangler.rehearse import drill, integrity, promtext, report
from strangler.rehearse.client import AdminClient, AdminError, AppClient
from strangler.rehearse.faults import FaultController, FaultSchedule
from strangler.rehearse.gates import Window, breached, evaluate
from strangler.rehearse.live import LiveDisplay
from strangler.rehearse.plan import Plan
from strangler.rehearse.sampler import MetricsSampler
from strangler.rehearse.stack import RunningStack
from strangler.rehearse.stats import Recorder, summarize
from strangler.rehearse.users import Shared, VirtualUser, check_names

State = dict[str, tuple[str, int]]


class RunError(Exception):
    """The run cannot start (gateway, accounts, database); the message says what to fix."""


@dataclass
class Target:
    gateway_url: str
    admin_url: str
    token: str | None
    config: Config
    databases: dict[str, str]
    """Database name of the plan's SQL checks -> URL (``stack``: the gateway config's)."""
    password: str | None = None
    stack: RunningStack | None = None


class Rehearsal:
    """One run of a plan against a gateway; ``run()`` returns the report document.

    ``live``: a rich panel on a terminal; otherwise (or on no terminal) the display
    prints a progress line every few seconds and each event as it happens."""

    def __init__(self, plan: Plan, target: Target, kind: str, live: bool) -> None:
        self.plan, self.target, self.kind = plan, target, kind
        self.admin = AdminClient(target.admin_url, target.token)
        self.router = Router(target.config.routes)
        self.recorder = Recorder()
        self.display = LiveDisplay(live)
        self.events: list[dict[str, Any]] = []
        self.stages: list[dict[str, Any]] = []
        self.metrics = MetricsSampler(self.scrape, self.now)
        self.state: State = {}
        self.drill: dict[str, Any] | None = None
        self.faults = FaultSchedule(plan.faults, FaultController(target.stack)
                                    if target.stack else None, self.now, self.event)
        self._t0 = 0.0
        self._stage_index = 0
        self._stage_start = 0.0

    def now(self) -> float:
        return time.monotonic() - self._t0

    def event(self, kind: str, detail: str) -> None:
        self.events.append({"t": round(self.now(), 3), "kind": kind, "detail": detail})

    async def scrape(self) -> promtext.Scrape | None:
        try:
            return promtext.parse(await self.admin.metrics())
        except (AdminError, ValueError):
            return None

    # ------------------------------------------------------------ the run
    async def run(self) -> dict[str, Any]:
        try:
            return await self._run()
        finally:
            await self.admin.close()

    async def _run(self) -> dict[str, Any]:
        run_id = secrets.token_hex(4)
        sql = integrity.SqlChecks(self.plan.checks.sql, self.target.databases,
                                  {"usernames": list(self.plan.users.usernames),
                                   "run_id": run_id})
        await self._preflight(sql)
        started = datetime.now(UTC)
        self._t0 = time.monotonic()
        shared = Shared(run_id, self.target.password, self.now)
        users = self._users(shared)
        tasks = [asyncio.create_task(u.run(self._delay(u.n))) for u in users]
        await self.metrics.start()
        def show() -> None:
            self.display.update(self._snapshot(shared, len(users)))

        sampler = asyncio.create_task(self.metrics.run(show))
        faults = asyncio.create_task(self.faults.run())
        self.display.start()
        try:
            await self._stages(shared, users)
        finally:
            faults.cancel()
            await self._stop_users(shared, tasks)
            await self._undo_faults()
            sampler.cancel()
            show()  # the last events (a fault undone) reach the display too
            self.display.stop()
        checks = await self._final(shared, users, sql)
        for u in users:
            await u.client.close()
        return self._report(started, users, checks)

    def _delay(self, n: int) -> float:
        return self.plan.users.ramp_s * n / self.plan.users.count

    def _users(self, shared: Shared) -> list[VirtualUser]:
        u = self.plan.users
        return [VirtualUser(n, u.usernames[n % len(u.usernames)] if u.usernames else None,
                            AppClient(self.target.gateway_url, u.timeout_s, self.router,
                                       self.recorder, self.now),
                            shared, self.plan)
                for n in range(u.count)]

    async def _preflight(self, sql: integrity.SqlChecks) -> None:
        try:
            routes = await self.admin.routes()
        except AdminError as exc:
            raise RunError(f"cannot read the gateway's routes: {exc}") from None
        if routes.get("kill_switch"):
            raise RunError("the kill switch is on: every route is on legacy and no stage "
                           "could move one (strangler flags kill off)")
        self.state = {r["name"]: (r["stage"], int(r["percent"])) for r in routes["routes"]
                      if not r.get("legacy_only")}
        await self._check_accounts()
        try:
            await sql.prepare()
        except integrity.DatabaseError as exc:
            raise RunError(str(exc)) from None

    async def _check_accounts(self) -> None:
        """Every account logs in once (the login step alone: once), before any load."""
        login = self.plan.login
        if login is None:
            return
        shared = Shared("preflight", self.target.password, self.now)
        for n, name in enumerate(self.plan.users.usernames or (None,)):
            client = AppClient(self.target.gateway_url, 10, self.router, Recorder(), self.now)
            try:
                user = VirtualUser(n, name, client, shared, self.plan)
                context = user.context()
                context["user"]["password"] = self.target.password
                reply = await user.call(login, context)
            finally:
                await client.close()
            if not login.accepts(reply.status):
                raise RunError(f"users.usernames: {name!r} cannot log in through "
                               f"{self.target.gateway_url} ({login.method} {login.path}): "
                               f"{reply.status} {reply.error or str(reply.body)[:200]}")

    # ------------------------------------------------------------ stages
    async def _stages(self, shared: Shared, users: list[VirtualUser]) -> None:
        for i in range(len(self.plan.stages)):
            held = await self._stage(i, shared, users)
            if not held:
                await self._after_breach(i, shared)
                for j in range(i + 1, len(self.plan.stages)):
                    self.stages.append({"name": self.plan.stages[j].name, "start_s": None,
                                        "end_s": None, "changes": [], "gates": [],
                                        "outcome": "skipped"})
                return

    async def _stage(self, i: int, shared: Shared, users: list[VirtualUser]) -> bool:
        spec, gates = self.plan.stages[i], self.plan.stage_gates(i)
        start, before = self.now(), dict(self.state)
        self._stage_index = i
        shared.stage, self._stage_start = spec.name, start
        scrape0, found0 = await self.scrape(), len(shared.findings)
        watch: asyncio.Task[float | None] | None = None
        if spec.rollback_all:
            changes, watch = await self._drill_start(spec.name, scrape0, spec.duration_s)
        else:
            changes = await self._apply(i)
        end, results = start + spec.duration_s, []
        while (left := end - self.now()) > 0.05:
            await asyncio.sleep(min(self.plan.check_interval_s, left))
            if end - self.now() > 0.05:
                window = await self._window(start, scrape0, shared, found0, watch, False)
                results = evaluate(gates, window)
                if breached(results):
                    break
        checked = not breached(results)  # a breach acts first: the users check at the end
        if checked:
            await self._check_users(shared, users)
            if watch is not None:
                await watch  # bounded: it gives up (None) after the stage's duration
            results = evaluate(gates, await self._window(start, scrape0, shared, found0,
                                                          watch, True))
        if spec.rollback_all:
            await self._drill_end(watch)
        outcome = "breached" if breached(results) else "held"
        self.stages.append({"name": spec.name, "start_s": round(start, 3),
                            "end_s": round(self.now(), 3), "changes": changes,
                            "gates": [r.to_dict() for r in results], "outcome": outcome,
                            "_before": before, "_checked": checked})
        return outcome == "held"

    async def _window(self, start: float, scrape0: promtext.Scrape | None, shared: Shared,
                      found0: int, watch: asyncio.Task[float | None] | None,
                      final: bool) -> Window:
        summary = summarize(self.recorder.window(start, self.now() + 1))
        now = await self.scrape()
        d = promtext.delta(now, scrape0) if now and scrape0 else None
        rollback = watch.result() if watch is not None and watch.done() else None
        return Window(summary, d.total_requests if d else None, d.total_fallbacks if d else None,
                      len(shared.findings) - found0, rollback, final)

    async def _check_users(self, shared: Shared, users: list[VirtualUser]) -> None:
        """Every running user checks itself against the app (between two journeys)."""
        epoch = shared.request_check()
        waiting = [u for u in users if u.started]
        deadline = self.now() + self.plan.users.timeout_s * 4 + 5
        while any(shared.checked.get(u.n, 0) < epoch for u in waiting) \
                and self.now() < deadline:
            shared.progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shared.progress.wait(), deadline - self.now())

    async def _apply(self, i: int) -> list[dict[str, Any]]:
        spec, changes, notes = self.plan.stages[i], [], []
        for route, change in spec.routes.items():
            target = (change.stage.value, _percent(change.stage.value, change.percent))
            if self.state.get(route) == target:
                continue  # already there (a group member moved with an earlier route)
            body = await self._flip(route, target, f"stage '{spec.name}'")
            changes += [{"route": r, "stage": target[0], "percent": target[1]}
                        for r in body.get("moved", [route])]
            notes.append(f"{route} -> {change.text()} (ledger {_ids(body)})")
        self.event("stage", f"{i + 1}/{len(self.plan.stages)} '{spec.name}'"
                            + (f": {'; '.join(notes)}" if notes else ": no route changes"))
        return changes

    async def _flip(self, route: str, target: tuple[str, int], why: str) -> dict[str, Any]:
        percent = target[1] if target[0] == "canary" else None
        body = await self.admin.set_route(route, target[0], percent,
                                          f"rehearsal '{self.plan.name}': {why}")
        for moved in body.get("moved", [route]):
            self.state[moved] = target
        return body

    # ------------------------------------------------------------ breach
    async def _after_breach(self, i: int, shared: Shared) -> None:
        stage = self.stages[-1]
        failed: list[dict[str, Any]] = [g for g in stage["gates"] if not g["passed"]]
        what = "; ".join(_gate_text(g) for g in failed)
        self.event("breach", f"stage '{stage['name']}': {what}")
        action = self.plan.on_breach.action
        if self.plan.stages[i].rollback_all:
            pass  # a drill stage has already sent everything to legacy
        elif action == "rollback":
            await self._rollback(stage["_before"], stage["name"], _gate_text(failed[0]))
        else:
            body = await self.admin.kill(True, f"rehearsal '{self.plan.name}': stage "
                                               f"'{stage['name']}' breached {what}")
            self.event("kill_switch", f"kill switch on (ledger {_ids(body)})")
        shared.stage = f"after breach of '{stage['name']}'"
        await asyncio.sleep(self.plan.on_breach.observe_s)

    async def _rollback(self, before: State, stage: str, why: str) -> None:
        notes = []
        for route, target in before.items():
            if self.state.get(route) != target:
                body = await self._flip(route, target, f"rollback of stage '{stage}' ({why})")
                notes.append(f"{', '.join(body.get('moved', [route]))} -> "
                             f"{_state_text(target)} (ledger {_ids(body)})")
        self.event("rollback", "; ".join(notes) or "nothing to roll back")

    # ------------------------------------------------------------ the drill stage
    async def _drill_start(self, name: str, scrape0: promtext.Scrape | None, give_up_s: float
                           ) -> tuple[list[dict[str, Any]], asyncio.Task[float | None]]:
        call = self.now()
        baseline = scrape0.backend_total("new") if scrape0 else 0.0
        watch = asyncio.create_task(drill.watch_new(self.scrape, self.now, call, baseline,
                                                     give_up_s))
        body = await self.admin.kill(True, f"rehearsal '{self.plan.name}': drill '{name}'")
        self.event("kill_switch", f"drill: kill switch on (ledger {_ids(body)})")
        changes, notes = [], []
        for route in list(self.state):
            if self.state[route] != ("legacy", 0):  # a group member may have moved already
                body = await self._flip(route, ("legacy", 0), f"drill '{name}'")
                changes += [{"route": r, "stage": "legacy", "percent": 0}
                            for r in body.get("moved", [route])]
                notes.append(f"{route} -> legacy (ledger {_ids(body)})")
        self.event("drill", "every route to legacy: " + ("; ".join(notes) or "already there"))
        self.drill = {"call_s": call}
        return changes, watch

    async def _drill_end(self, watch: asyncio.Task[float | None] | None) -> None:
        rollback_s = await watch if watch is not None else None
        assert self.drill is not None
        last = self.recorder.last_new_start(self.drill["call_s"])
        users_side = None if not self.recorder.saw_backend_header else \
            round(last - self.drill["call_s"], 3) if last is not None else 0.0
        self.drill.update({"rollback_s": rollback_s, "last_new_request_s": users_side})
        body = await self.admin.kill(False, f"rehearsal '{self.plan.name}': drill done, "
                                            "every route is on legacy")
        self.event("drill", f"rollback took {rollback_s} s by /metrics, last user request "
                            f"served by new {users_side} s after the call; kill switch "
                            f"released, routes stay on legacy (ledger {_ids(body)})")

    # ------------------------------------------------------------ faults, display
    async def _undo_faults(self) -> None:
        await self.faults.undo_all()
        if self.target.stack is not None:
            with contextlib.suppress(AdminError):
                await self.admin.wait_ready(30)

    def _snapshot(self, shared: Shared, users: int) -> dict[str, Any]:
        s = summarize(self.recorder.window(self._stage_start, self.now() + 1))
        total = summarize(self.recorder.samples)
        gw = self.metrics.overall()
        return {"title": f"{self.kind}: {self.plan.name}", "stage": shared.stage,
                "stage_index": self._stage_index + 1,
                "stages_total": len(self.plan.stages), "elapsed_s": round(self.now(), 1),
                "duration_s": self.plan.duration_s, "users": users,
                "requests": total.requests, "errors": total.errors,
                "error_rate": round(total.error_rate, 5), "p99_ms": round(s.p99_ms, 1),
                "fallback_rate": round(gw.total_fallbacks / gw.total_requests, 5)
                if gw and gw.total_requests else 0.0,
                "by_backend": self.metrics.by_backend_since(int(self._stage_start)),
                "events": [f"{e['t']:.1f}s {e['kind']}: {e['detail']}" for e in self.events[-5:]]}

    # ------------------------------------------------------------ the end
    async def _stop_users(self, shared: Shared, tasks: list[asyncio.Task[None]]) -> None:
        shared.stop.set()
        shared.poke()
        _, left = await asyncio.wait(tasks, timeout=self.plan.users.timeout_s * 4 + 5)
        for task in left:
            task.cancel()  # its operation in flight stays pending in its model: never lost
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _final(self, shared: Shared, users: list[VirtualUser],
                     sql: integrity.SqlChecks) -> list[dict[str, Any]]:
        shared.stage = "final"
        await asyncio.gather(*(u.check() for u in users))
        keys = [k for u in users for k in u.unanswered]
        keys += [k for u in users if u.pending is not None and (k := u.pending.key())]
        captured: dict[str, list[integrity.Capture]] = {}
        for check in self.plan.checks.sql:
            if not isinstance(check.expect, str):
                key = check.expect.captured
                captured[key] = [integrity.Capture(u.n, u.username or "-", v) for u in users
                                 for v in _listed(u.model.doc.get(key))]
        checked = sum(1 for s in self.stages if s.get("_checked"))
        checks = integrity.user_checks(shared.findings, shared.unverified, len(users), checked,
                                       check_names(self.plan))
        entries, results = await sql.run(captured, keys)
        if self.drill is not None:
            self.drill.update(drill.counts(shared.findings, results))
        return checks + entries

    def _report(self, started: datetime, users: list[VirtualUser],
                checks: list[dict[str, Any]]) -> dict[str, Any]:
        end, gw = self.now(), self.metrics.overall()
        facts = None if self.drill is None else {
            k: self.drill.get(k) for k in ("rollback_s", "last_new_request_s",
                                           "users_logged_out", "models_changed",
                                           "rows_lost", "rows_duplicated")}
        return report.build(
            self.kind, self.plan.model_dump(mode="json"), started, datetime.now(UTC), end,
            self.stages, self.events, report.timeline(self.recorder, self.metrics.seconds, end),
            len(users), checks,
            report.totals(self.recorder, gw.total_fallbacks if gw else 0.0), facts)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _percent(stage: str, percent: int | None) -> int:
    return {"legacy": 0, "shadow": 0, "new": 100, "complete": 100}.get(stage, percent or 0)


def _state_text(target: tuple[str, int]) -> str:
    return f"canary {target[1]}%" if target[0] == "canary" else target[0]


def _ids(body: dict[str, Any]) -> str:
    ids = body.get("ledger") or []
    note = ", ".join(f"#{i}" for i in ids) if ids else "not recorded"
    return note + (f"; {body['ledger_error']}" if body.get("ledger_error") else "")


def _gate_text(g: dict[str, Any]) -> str:
    label = f"{g['name']}.{g['route']}" if g.get("route") else g["name"]
    seen = "n/a" if g["observed"] is None else f"{g['observed']:.4g}"
    return f"{label} {seen} > {g['limit']:g}"
