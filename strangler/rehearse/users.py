"""Virtual users: run the plan's journeys through the gateway and check the app against
their own model.

Each user logs in with the plan's login step (as one of its accounts, its own
session), then picks journeys by weight with a think time between them.
Every answer is held against the user's model (``model.py``): a step's
captures and updates change it, its assertions compare the answer with it. A
request without an answer either leaves the model keys it would change
uncertain until the next read (``on_no_answer: uncertain``) or is sent again,
the same, before anything else (``resend``). When the runner asks (after
every stage, and at the end), each user runs the plan's HTTP checks and
reports any difference.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from strangler.rehearse.client import AppClient, Reply
from strangler.rehearse.model import Change, Model, ModelError, contains, show, split
from strangler.rehearse.plan import Plan
from strangler.rehearse.plan_steps import Assertion, HttpCheck, Request, Step
from strangler.rehearse.template import Evaluator, ExpressionError

SESSION = "session_continuity"
JOURNEYS = "journeys"
"""Where a step that names no check records its findings."""


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    user: int
    username: str
    stage: str
    t: float
    expected: str
    got: str

    def text(self) -> str:
        return (f"user {self.user} ({self.username}), stage '{self.stage}', {self.t:.1f} s: "
                f"expected {self.expected}; got {self.got}")


@dataclass
class Shared:
    """What every user reads: the stage, the run's clock, stop and check requests."""

    run_id: str
    password: str | None
    clock: object
    stage: str = ""
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    check_epoch: int = 0
    checked: dict[int, int] = field(default_factory=dict)
    """user -> the last check epoch it completed."""
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever a user completes a check."""
    findings: list[Finding] = field(default_factory=list)
    unverified: list[tuple[str, str]] = field(default_factory=list)
    """(stage, what): checks that got no answer, however often they were retried."""

    def now(self) -> float:
        return float(self.clock())  # type: ignore[operator]

    def request_check(self) -> int:
        self.check_epoch += 1
        self.poke()
        return self.check_epoch

    def poke(self) -> None:
        """Wake every thinking user (a check or stop was requested)."""
        old, self.wake = self.wake, asyncio.Event()
        old.set()


def check_names(plan: Plan) -> list[str]:
    """Every check a user can record a finding under, in the report's order."""
    names = [SESSION]
    for c in plan.checks.http:
        names.append(c.name)
    for journey in plan.journeys.values():
        for step in journey.steps:
            if step.can_find:
                names.append(step.check or JOURNEYS)
    return list(dict.fromkeys(names))


@dataclass
class Sent:
    """A request as rendered: what a resend sends again, byte for byte."""

    step: Step
    vars: dict[str, Any]
    method: str
    path: str
    body: Any
    headers: dict[str, str]

    @property
    def what(self) -> str:
        return f"{self.method} {self.path}"

    def key(self) -> str | None:
        wanted = (self.step.key_header or "").lower()
        return next((v for h, v in self.headers.items() if h.lower() == wanted), None)


class VirtualUser:
    def __init__(self, n: int, username: str | None, client: AppClient, shared: Shared,
                 plan: Plan) -> None:
        self.n, self.username, self.client, self.shared, self.plan = \
            n, username, client, shared, plan
        self.rng = random.Random(f"{shared.run_id}-{n}")
        self.eval = Evaluator(self.rng)
        self.journeys = [name for name, j in plan.journeys.items() if j.weight > 0]
        self.weights = [plan.journeys[name].weight for name in self.journeys]
        t = plan.users.think_ms
        self.think_s = (t.min / 1000, t.max / 1000)
        self.model = Model(plan.model)
        self.logged_in = plan.login is None
        self.pending: Sent | None = None
        self.unanswered: list[str] = []
        """Keys of requests whose answer never came (the SQL checks look them up)."""
        self.started = False

    @property
    def who(self) -> str:
        return self.username or f"user {self.n}"

    # ------------------------------------------------------------ bookkeeping
    def find(self, check: str, expected: str, got: str) -> None:
        self.shared.findings.append(Finding(check, self.n, self.username or "-",
                                            self.shared.stage, round(self.shared.now(), 2),
                                            expected, got))

    def _lost(self, reply: Reply, what: str) -> bool:
        """The answer says the session is gone: a finding if the user believed itself
        logged in; it logs in again next."""
        if self.plan.login is None or reply.status not in self.plan.login.lost_status:
            return False
        if self.logged_in:
            self.find(SESSION, f"logged in as {self.who}", f"{reply.status} on {what}")
        self.logged_in = False
        if self.pending is not None:
            self._give_up_pending()
        return True

    def _give_up_pending(self) -> None:
        assert self.pending is not None
        key = self.pending.key()
        if key is not None:
            self.unanswered.append(key)  # the session is gone; the database will tell
        self.pending = None

    def context(self, vars_: dict[str, Any] | None = None, reply: Reply | None = None
                ) -> dict[str, Any]:
        return {"user": {"n": self.n, "username": self.username},
                "run": {"id": self.shared.run_id}, "model": self.model.doc,
                "vars": vars_ or {}, "response": reply.body if reply else None,
                "status": reply.status if reply else None}

    # ------------------------------------------------------------ the loop
    async def run(self, start_delay: float) -> None:
        try:
            await asyncio.wait_for(self.shared.stop.wait(), start_delay)
            return
        except TimeoutError:
            pass
        self.started = True
        while not self.shared.stop.is_set():
            if self.shared.checked.get(self.n, 0) < self.shared.check_epoch:
                epoch = self.shared.check_epoch
                await self.check()
                self.shared.checked[self.n] = epoch
                self.shared.progress.set()
                continue
            await self.step()
            await self._pause(self.rng.uniform(*self.think_s))

    async def _pause(self, seconds: float) -> bool:
        """Think; True when the run is stopping. A check request cuts the pause short."""
        wake = self.shared.wake
        try:
            await asyncio.wait_for(wake.wait(), seconds)
        except TimeoutError:
            pass
        return self.shared.stop.is_set()

    async def step(self) -> None:
        """One journey (or the resend of a request still unanswered)."""
        if not await self.ensure_login():
            return
        if self.pending is not None:
            await self.send_pending()
            return
        if self.model.uncertain and not await self.resolve():
            return  # the model is not known yet: change nothing until it is
        journey = self.rng.choices(self.journeys, self.weights)[0]
        await self.journey(journey)

    async def journey(self, name: str) -> None:
        for step in self.plan.journeys[name].steps:
            try:
                if step.when is not None and not self.eval.truthy(step.when, self.context()):
                    continue
                if not await self.send(step):
                    return
            except (ExpressionError, ModelError) as exc:
                self.find(step.check or JOURNEYS, f"journey {name!r} to run", str(exc)[:200])
                return

    async def resolve(self) -> bool:
        """Read back every uncertain model key an ``equal`` check covers; True once none
        of them is left (a key no check reads stays uncertain until an assertion does)."""
        readable = set()
        for check in self.plan.checks.http:
            if check.model is None or check.compare != "equal":
                continue
            key = split(check.model)[0]
            readable.add(key)
            if key in self.model.uncertain and await self.run_check(check) is None:
                return False
        return not self.model.uncertain & readable

    async def ensure_login(self) -> bool:
        login = self.plan.login
        if self.logged_in or login is None:
            return True
        context = self.context()
        context["user"]["password"] = self.shared.password
        reply = await self.call(login, context)
        if login.accepts(reply.status):
            self.logged_in = True
            self.model.reset(login.resets)
            try:
                self._capture(login.capture, self.context(reply=reply))
            except (ExpressionError, ModelError) as exc:
                self.find(SESSION, f"login as {self.who} to be captured", str(exc)[:200])
        elif reply.answered:
            self.find(SESSION, f"login as {self.who} to succeed",
                      f"{reply.status} {str(reply.body)[:120]}")
        return self.logged_in

    async def call(self, request: Request, context: dict[str, Any]) -> Reply:
        r = self.eval.render
        return await self.client.call(request.method, r(request.path, context),
                                      r(request.body, context),
                                      r(dict(request.headers), context) or None)

    # ------------------------------------------------------------ a step
    async def send(self, step: Step) -> bool:
        """Render and send one step; True when it succeeded (the journey goes on)."""
        vars_: dict[str, Any] = {}
        for name, expr in step.vars.items():
            vars_[name] = self.eval.search(expr, self.context(vars_))
        context = self.context(vars_)
        r = self.eval.render
        sent = Sent(step, vars_, step.method, r(step.path, context), r(step.body, context),
                    {k: self.eval.render(v, context) for k, v in step.headers.items()})
        if step.on_no_answer == "resend":
            self.pending = sent
        return await self._exchange(sent)

    async def send_pending(self) -> bool:
        assert self.pending is not None
        try:
            return await self._exchange(self.pending)
        except (ExpressionError, ModelError) as exc:
            self.find(self.pending.step.check or JOURNEYS, f"{self.pending.what} to settle",
                      str(exc)[:200])
            self.pending = None
            return False

    async def _exchange(self, sent: Sent) -> bool:
        step = sent.step
        try:
            reply = await self.client.call(sent.method, sent.path, sent.body,
                                           sent.headers or None)
        except asyncio.CancelledError:  # the run stops mid-request: it may have happened
            if step.on_no_answer == "uncertain":
                self._unknown(step, self.context(sent.vars))
            raise
        if step.ends_session:
            self.logged_in = self.plan.login is None
            if not step.accepts(reply.status) and reply.answered:
                self.find(step.check or SESSION, f"{sent.what} to answer {step.expect}",
                          f"{reply.status} {str(reply.body)[:120]}")
            return False
        if self._lost(reply, sent.what):
            return False
        if not reply.answered:
            if step.on_no_answer == "uncertain":
                self._unknown(step, self.context(sent.vars))
            return False  # resend: still pending, sent again before anything else
        self.pending = None if self.pending is sent else self.pending
        if not step.accepts(reply.status):
            self.find(step.check or JOURNEYS, f"{sent.what} to answer {step.expect}",
                      f"{reply.status} {str(reply.body)[:120]}")
            return False
        context = self.context(sent.vars, reply)
        self._capture(step.capture, context)
        for update in step.update:
            self.model.apply(self._change(update, self.context(sent.vars, reply)))
        ok = True
        for assertion in step.assertions:
            ok = self._assert(assertion, step, sent, reply) and ok
        return ok

    def _capture(self, captures: dict[str, str], context: dict[str, Any]) -> None:
        for path, expr in captures.items():
            value = self.eval.search(expr, context)
            self.model.apply(Change("set", split(self.eval.render(path, context)), value))

    def _change(self, update: Any, context: dict[str, Any]) -> Change:
        path = split(str(self.eval.render(update.path, context)))
        if update.from_ is not None:
            value = self.eval.search(update.from_, context)
        else:
            value = self.eval.render(update.value, context)
        return Change(update.op, path, value, update.has_value)

    def _unknown(self, step: Step, context: dict[str, Any]) -> None:
        """No answer: what the step would change may or may not have happened.

        A capture records what an answer said: with none, nothing is captured. An
        update taken from the answer could have been anything."""
        changes = []
        for update in step.update:
            if update.from_ is not None and "response" in update.from_:
                self.model.anything(split(self.eval.render(update.path, context))[0])
            else:
                changes.append(self._change(update, context))
        if changes:
            self.model.unknown(changes)

    def _assert(self, a: Assertion, step: Step, sent: Sent, reply: Reply) -> bool:
        check = step.check or JOURNEYS
        if a.status is not None:
            if reply.status in a.status:
                return True
            self.find(check, f"{sent.what} to answer {list(a.status)}", str(reply.status))
            return False
        assert a.expr is not None
        context = self.context(sent.vars, reply)
        observed = self.eval.search(a.expr, reply.body)
        if a.model is not None:
            path = split(self.eval.render(a.model, context))
            if a.compare == "contains":
                return self._contains(check, path, observed, sent.what)
            expected = self.model.expected_text(path)
            if self.model.reconcile(path, observed):
                return True
            self.find(check, f"{'.'.join(path)} {expected}", f"{show(observed)} ({sent.what})")
            return False
        wanted = self.eval.render(a.equals, context)
        if observed == wanted:
            return True
        self.find(check, f"{a.expr} {show(wanted)}", f"{show(observed)} ({sent.what})")
        return False

    # ------------------------------------------------------------ checks
    async def check(self, attempts: int = 4) -> bool:
        """The plan's HTTP checks against the model; False if they could not be made."""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(0.25 * attempt)
            if await self._check_once():
                return True
        self.shared.unverified.append((self.shared.stage, f"user {self.n} ({self.who}), "
                                       f"stage '{self.shared.stage}': no answer to its checks"))
        return False

    async def _check_once(self) -> bool:
        if self.pending is not None:
            await self.send_pending()
            if self.pending is not None:
                return False
        if not self.logged_in:
            return await self.ensure_login()  # nothing of its session left to check
        for check in self.plan.checks.http:
            done = await self.run_check(check)
            if done is None:
                return False
            if not done:
                return True  # the session is gone (recorded): nothing more to compare
        return True

    async def run_check(self, check: HttpCheck) -> bool | None:
        """One HTTP check; None: no answer; False: the session is gone."""
        context = self.context()
        reply = await self.call(check, context)
        what = f"{check.method} {self.eval.render(check.path, context)}"
        if self._lost(reply, what):
            return False
        if not reply.answered:
            return None
        if not check.accepts(reply.status):
            self.find(check.name, f"{what} to answer {check.expect}",
                      f"{reply.status} {str(reply.body)[:120]}")
            return True
        try:
            observed = self.eval.search(check.expr, reply.body)
            self._compare(check, observed, what)
        except (ExpressionError, ModelError) as exc:
            self.find(check.name, f"{what} to be checked", str(exc)[:200])
        return True

    def _compare(self, check: HttpCheck, observed: Any, what: str) -> None:
        if check.model is None:
            wanted = self.eval.render(check.equals, self.context())
            if observed != wanted:
                self.find(check.name, f"{check.expr} {show(wanted)}", f"{show(observed)} ({what})")
            return
        path = split(self.eval.render(check.model, self.context()))
        if check.compare == "equal":
            expected = self.model.expected_text(path)
            if not self.model.reconcile(path, observed):
                self.find(check.name, f"{'.'.join(path)} {expected}", f"{show(observed)} ({what})")
            return
        self._contains(check.name, path, observed, what)

    def _contains(self, check: str, path: tuple[str, ...], observed: Any, what: str) -> bool:
        """Every element (or key) of the model at ``path`` is in the answer."""
        mine: Any = self.model.doc
        for key in path:
            mine = mine.get(key) if isinstance(mine, dict) else None
        ok = True
        for item in mine if isinstance(mine, list) else [mine]:
            if not contains(observed, [item] if isinstance(observed, list) else item):
                self.find(check, f"{show(item)} in {what}", "missing or different")
                ok = False
        return ok
