"""Nothing lost while the notes app's state routes flip, with a node killed and Redis hung.

The second profile's twin of test_stress_flips.py / test_stress_saturated.py:
60 sequential users of the notes app (50 logged in, 10 guests whose sessions
either side may make), each with a model of its prefs (map), tags (set),
visits (counter) and draft (lww), act at random while, through real processes,

- the ``state`` route flips legacy -> canary 30 -> canary 70 -> new every 200 ms
  through the admin API (the new side is the Node service, tests/apps/notes_node);
- legacy node ``a`` is SIGKILLed at a quarter of the flips and started again
  (empty) at a third;
- Redis (a private server) is hung with SIGSTOP for 2 s half way.

What a user is told is the contract:

- 200: done, exactly once; the answer must equal the model with the change.
- 503 with Retry-After: refused, nothing done: the user waits as told and sends
  the same request again.
- Anything else (a 5xx, no answer): the outcome is unknown. The user reads its
  state (after Redis is back: a write queued in a hung Redis may still land)
  and the state must be the model with or without that change; the model then
  follows what was read.
- Never a 401 or a state of another user.

At the end every state equals its model on legacy and on new, the monolith's
own keys (``_csrf``, ``created_at``, ``flash``) of every logged-in session are
byte for byte what the login made, in every node's copy, and the gateway
counted exactly the merge conflicts sequential users make: none.
``STRANGLER_NOTES_STRESS_USERS`` (logged-in users; a fifth as many guests join
them) and ``STRANGLER_NOTES_STRESS_FLIPS`` set the size.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.lifecycle import running
from tests.support.notes_stack import UNDECLARED, NotesStack, exports, metric, typed
from tests.support.notes_user import NotesModel, NotesUser, do
from tests.support.redis_proc import PrivateRedis
from tests.support.shop import Admin, Reply

LOGGED_IN = int(os.environ.get("STRANGLER_NOTES_STRESS_USERS", "50"))
GUESTS = LOGGED_IN // 5
FLIPS = int(os.environ.get("STRANGLER_NOTES_STRESS_FLIPS", "150"))
FLIP_EVERY_S = 0.2
CYCLE = [("legacy", None), ("canary", 30), ("canary", 70), ("new", None)]
REDIS_PAUSE_S = 2.0
MAX_REFUSALS = 60
NAMES = ("ann", "bo", "cy", "dee")
IDS = {"ann": "u-1001", "bo": "u-1002", "cy": "u-1003", "dee": "u-1004"}
PAGES = ("home", "docs", "faq", "blog")
TAGS = ("work", "home", "Ünï", "😀", "\uff01", "z")

_GATEWAY = {"timeouts": {"connect_ms": 500, "request_ms": 15000}}


class GaveUp(Exception):
    """Refused every time: the operation was not done."""


@dataclass
class Person:
    index: int
    user: NotesUser
    username: str | None  # None: a guest
    rng: random.Random
    redis_up: asyncio.Event
    model: NotesModel = field(default_factory=NotesModel)
    snapshot: dict[str, str] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)

    @property
    def uid(self) -> str | None:
        return IDS[self.username] if self.username else None

    def note(self, what: str, reply: Reply | None, error: str = "") -> None:
        where = f"{reply.backend}:{reply.upstream}" if reply and reply.backend else "-"
        rid = reply.headers.get("X-Request-Id", "") if reply else ""
        status = reply.status if reply else error
        self.history.append(f"{time.monotonic():.2f} {what} -> {status} {where} {rid}")
        del self.history[:-12]
        if reply is not None:
            self.seen[str(reply.status)] += 1
            if reply.backend and reply.status == 200:
                self.seen[reply.backend] += 1

    def problem(self, text: str) -> None:
        if not self.problems:
            text += "\n      history: " + "\n               ".join(self.history)
        self.problems.append(text)

    async def send(self, what: str, call: Any) -> Reply | None:
        """Re-sent while refused (503 + Retry-After); None: no answer at all."""
        for _ in range(MAX_REFUSALS):
            try:
                reply: Reply = await call()
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.note(what, None, type(exc).__name__)
                self.seen["no_answer"] += 1
                return None
            self.note(what, reply)
            if reply.status == 503 and reply.headers.get("Retry-After") is not None:
                self.seen["refused"] += 1
                await asyncio.sleep(min(float(reply.headers["Retry-After"]), 0.25))
                continue
            return reply
        raise GaveUp(what)

    def op(self) -> tuple[str, ...]:
        roll, r = self.rng.random(), self.rng
        if roll < 0.2:
            return ("set_pref", f"k{r.randint(0, 5)}", r.choice(["dark", "light", "é", ""]))
        if roll < 0.3:
            return ("delete_pref", f"k{r.randint(0, 5)}")
        if roll < 0.5:
            return ("add_tag", r.choice(TAGS))
        if roll < 0.6:
            return ("remove_tag", r.choice(TAGS))
        if roll < 0.85:
            return ("visit", r.choice(PAGES))
        return ("set_draft", f"draft {self.index}-{r.randint(0, 999)} 😀")

    async def step(self) -> None:
        if self.rng.random() < 0.2:
            await self.look("look")
            return
        op = self.op()
        reply = await self.send(str(op), lambda: do(self.user, op))
        if reply is not None and reply.status == 200:
            self.expect(str(op), reply, [self.applied(op)])
            return
        if reply is not None and reply.status < 500:
            self.problem(f"{op}: {reply.status} {reply.body}")
            return
        self.seen["unknown"] += 1
        await self.redis_up.wait()  # a write queued in a hung Redis lands when it is back
        await self.look(f"settle {op}", [self.model.view(), self.applied(op)])

    def applied(self, op: tuple[str, ...]) -> dict[str, Any]:
        model = NotesModel(dict(self.model.prefs), set(self.model.tags),
                           Counter(self.model.visits), self.model.draft)
        model.apply(op)
        return model.view()

    def expect(self, what: str, reply: Reply, options: list[dict[str, Any]]) -> None:
        state = reply.body
        user = (state.get("user") or {}).get("id") if isinstance(state, dict) else "?"
        if user != self.uid:
            self.problem(f"{what} on {reply.backend}: user {user}, not {self.uid}")
            return
        got = {k: state.get(k) for k in ("prefs", "tags", "visits", "draft")}
        if got not in options:
            self.problem(f"{what} on {reply.backend}:{reply.upstream} "
                         f"({reply.headers.get('X-Request-Id')}): {got} != model "
                         f"{' or '.join(map(str, options))}")
        self.model = NotesModel(dict(got["prefs"] or {}), set(got["tags"] or []),
                                Counter(got["visits"] or {}), got["draft"])

    async def look(self, what: str, options: list[dict[str, Any]] | None = None) -> None:
        for _ in range(10):
            reply = await self.send(what, self.user.state)
            if reply is not None and reply.status == 200:
                self.expect(what, reply, options or [self.model.view()])
                return
            if reply is not None and reply.status < 500:
                self.problem(f"{what}: {reply.status} {reply.body}")
                return
        self.problem(f"{what}: never read")


async def _flipper(admin: Admin, events: dict[int, Any]) -> list[str]:
    done: list[str] = []
    in_flight: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def flip(stage: str, pct: int | None) -> None:
        try:
            status = (await admin.set_route("state", stage, pct)).status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        done.append(f"{stage}{pct or ''}:{status}")

    for i in range(FLIPS):
        if i in events:
            await events[i]()
        stage, pct = CYCLE[i % len(CYCLE)]
        in_flight = [t for t in in_flight if not t.done()]
        if len(in_flight) >= 4:
            await in_flight[0]
        in_flight.append(asyncio.create_task(flip(stage, pct)))
        await asyncio.sleep(max(0.0, start + (i + 1) * FLIP_EVERY_S - loop.time()))
    await asyncio.gather(*in_flight)
    return done


@pytest.fixture
def stress_stack(request: pytest.FixtureRequest, tmp_path: Path,
                 private_redis: PrivateRedis) -> Iterator[NotesStack]:
    with running(NotesStack(tmp_path / "stack", private_redis.url, gateway_overrides=_GATEWAY),
                 request) as s:
        yield s


@pytest.mark.timeout(600)
async def test_notes_users_lose_nothing_while_state_flips_under_a_kill_and_a_hung_redis(
        stress_stack: NotesStack, private_redis: PrivateRedis) -> None:
    stack = stress_stack
    admin = Admin(stack.admin_url(), stack.admin_token)
    redis_up = asyncio.Event()
    redis_up.set()
    people = [Person(i, NotesUser(stack.url()), NAMES[i % 4] if i < LOGGED_IN else None,
                     random.Random(i), redis_up) for i in range(LOGGED_IN + GUESTS)]
    try:
        for p in people[:LOGGED_IN]:
            reply = await p.user.login(p.username or "")
            assert reply.status == 200, f"login of user {p.index} failed: {reply.body}"
            sid = p.user.session_id
            assert sid, f"user {p.index}: the login set no sessionid"
            copies = await exports(stack, sid)
            assert len(copies) == 1, f"user {p.index}: {len(copies)} nodes hold the login"
            p.snapshot = {k: typed(copies[0]["data"][k]) for k in UNDECLARED}
        conflicts = await metric(stack, "strangler_session_merge_conflicts_total")

        restarted: list[asyncio.Task[None]] = []

        async def kill_a() -> None:
            await asyncio.to_thread(stack.legacy["a"].kill)

        async def restart_a() -> None:
            restarted.append(asyncio.create_task(
                asyncio.to_thread(stack.legacy["a"].start, 30)))

        async def hang_redis() -> None:
            redis_up.clear()
            private_redis.pause()

            async def resume() -> None:
                await asyncio.sleep(REDIS_PAUSE_S)  # the fault's length, not a wait
                private_redis.resume()
                redis_up.set()

            restarted.append(asyncio.create_task(resume()))

        events = {FLIPS // 4: kill_a, FLIPS // 3: restart_a, FLIPS // 2: hang_redis}
        flipping = asyncio.create_task(_flipper(admin, events))

        async def act(p: Person) -> None:
            try:
                while not flipping.done():
                    await p.step()
            except GaveUp as exc:
                p.problem(f"gave up on {exc} after {MAX_REFUSALS} refusals")

        await asyncio.gather(*(act(p) for p in people))
        flipped = await flipping
        await asyncio.gather(*restarted)

        for stage in ("legacy", "new"):
            assert (await admin.set_route("state", stage)).status == 200
            for p in people:
                await p.look(f"final look on {stage}")
                if p.seen[stage] == 0 and p.user.session_id:
                    p.problem(f"never served by {stage}")
        copies_by_person = {p.index: await exports(stack, p.user.session_id or "")
                            for p in people[:LOGGED_IN]}
        conflicts = await metric(stack, "strangler_session_merge_conflicts_total") - conflicts
        unfit = await metric(stack, "strangler_session_unbridgeable_total")
        bridge = await _bridge_metrics(stack)
    finally:
        await asyncio.gather(*(p.user.close() for p in people))

    seen = sum((p.seen for p in people), Counter())
    print(f"\nnotes stress: {len(people)} users, {len(flipped)} flips, answers {dict(seen)}")
    print("gateway: " + "; ".join(bridge))
    problems = [f"user {p.index} ({p.username or 'guest'}): {x}" for p in people
                for x in p.problems]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:12])
    for p in people[:LOGGED_IN]:
        copies = copies_by_person[p.index]
        assert copies, f"user {p.index}: no node holds the session"
        for copy in copies:
            got = {k: typed(copy["data"].get(k)) for k in UNDECLARED}
            assert got == p.snapshot, f"user {p.index} on {copy['node']}: {got} != {p.snapshot}"
    assert conflicts == 0, f"{conflicts} merge conflicts from sequential users"
    assert unfit == 0, f"{unfit} sessions became unbridgeable"
    assert len(flipped) == FLIPS
    failed_flips = [f for f in flipped if not f.endswith(":200")]
    assert len(failed_flips) <= REDIS_PAUSE_S / FLIP_EVERY_S + 5, failed_flips
    assert seen["legacy"] > 200 and seen["new"] > 200, seen


async def _bridge_metrics(stack: NotesStack) -> list[str]:
    async with aiohttp.ClientSession() as http, \
            http.get(stack.admin_url() + "/metrics") as resp:
        text = await resp.text()
    wanted = ("strangler_session_refused_total", "strangler_session_merge_conflicts_total",
              "strangler_session_stale_detected_total", "strangler_upstream_errors_total",
              "strangler_fallbacks_total")
    return [line for line in text.splitlines()
            if line.startswith(wanted) and not line.endswith(" 0.0")]
