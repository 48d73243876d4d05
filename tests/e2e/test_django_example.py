"""The Django trips example (examples/django_trips) end to end, through real processes.

Its stack is started from its own config.yaml and stack.yaml (``start_stack``, free
ports, a private Redis): two Django nodes under gunicorn whose sessions live in each
process's memory, two instances of its new service, one gateway. A user logs in on
Django; an operator moves the session routes to the new service with the admin API;
the new service sees the user and every field Django wrote; a write on new is seen
by Django after a rollback (a booking from a wizard filled on both sides included);
the Django node holding the session is SIGKILLed and the other node serves it,
still logged in, state intact, Django's own keys (``_auth_user_hash``...) unchanged.
Many concurrent writes on both sides -- the routes split between them, then flipping
under the writes -- merge by the declared rules: nothing counted, saved or set is lost.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import pytest

from strangler.rehearse.stack import RunningStack, start_stack
from testkit.browser import Browser, Reply
from testkit.checks import expect
from testkit.net import await_until, port_open
from testkit.shop import Admin
from testkit.trips import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
TRIPS = ROOT / "examples" / "django_trips"
SESSION_ROUTES = ("me", "state", "prefs", "saved", "views", "wizard", "draft")
FIELDS = ("prefs", "saved", "views", "recent", "wizard", "draft")  # config.yaml's fields
SLUGS = ("lisbon", "kyoto", "reykjavik", "marrakesh", "cusco", "hanoi", "cape-town",
         "tromso", "oaxaca", "tbilisi")  # the seed's destinations
ANN = {"username": "ann", "name": "Ann Lee"}


class TripsUser(Browser):
    """One browser through the gateway: keeps Django's ``sessionid`` cookie."""

    session_cookie = "sessionid"

    async def login(self, username: str = "ann") -> Reply:
        return await self.call("POST", "/accounts/login",
                               {"username": username, "password": PASSWORD})


@pytest.fixture
async def trips(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[RunningStack]:
    stack = await start_stack(TRIPS / "config.yaml", tmp_path / "run", True)
    try:
        yield stack
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is None or report.failed:
            for proc in stack.processes():
                print(f"----- {proc.name}\n{proc.tail(40)}")
        await stack.stop()


def on(reply: Reply, backend: str, what: str) -> Reply:
    """``reply`` if it is a 200 served by ``backend``; else fail saying what it was for."""
    expect(reply, 200, what)
    assert reply.backend == backend, f"{what}: served by {reply.backend}, not {backend}"
    return reply


async def move(admin: Admin, routes: tuple[str, ...], stage: str) -> None:
    """As an operator does: each route through the admin API, checked in its listing."""
    for route in routes:
        await admin.must_set_route(route, stage)
    listing = (await admin.routes()).body
    stages = {r["name"]: r["stage"] for r in listing["routes"]}
    assert all(stages[r] == stage for r in routes), f"routes after the move: {stages}"


async def export(stack: RunningStack, node: str, sid: str) -> dict[str, Any]:
    """The session as Django node ``node`` holds it, read through its export hook."""
    url = next(n.url for n in stack.config.legacy.nodes if n.id == node)
    token = (stack.dir / "internal-token").read_text().strip()
    async with aiohttp.ClientSession() as http, \
            http.get(f"{url}/_internal/sessions/{quote(sid, safe='')}",
                     headers={"X-Internal-Token": token}) as resp:
        body = await resp.read()
        assert resp.status == 200, f"export of the session from {node}: {resp.status} {body!r}"
        data: dict[str, Any] = json.loads(body)["data"]
        return data


async def _closed(port: int) -> bool:
    return not port_open(port)


def undeclared(data: dict[str, Any]) -> dict[str, Any]:
    """Every key of a Django session the profile does not declare as a field."""
    return {k: v for k, v in data.items() if k not in FIELDS}


def state_of(model: dict[str, Any]) -> dict[str, Any]:
    return {"user": model["user"], "prefs": model["prefs"], "saved": sorted(model["saved"]),
            "views": dict(model["views"]), "recent": model["recent"],
            "wizard": model["wizard"], "draft": model["draft"]}


# ---------------------------------------------------------------- one user's migration

async def test_a_session_crosses_to_new_and_back_and_survives_its_node(
        trips: RunningStack) -> None:
    admin = Admin(trips.admin_url, trips.admin_token)
    async with TripsUser(trips.gateway_url) as ann:
        login = on(await ann.login(), "legacy", "login of ann on Django through the gateway")
        user = login.body["user"]
        assert {k: user[k] for k in ("username", "name")} == ANN, user
        sid = ann.session_id
        assert sid, f"the login set no sessionid: {login.headers}"
        node = login.upstream
        assert node in {"a", "b"}, login.headers

        # Django writes every session field (the routes are on legacy, as configured)
        writes = [("PUT", "/api/prefs/theme", {"value": "dark"}),
                  ("PUT", "/api/prefs/currency", {"value": "eur"}),
                  ("PUT", "/api/saved/kyoto", None), ("PUT", "/api/saved/lisbon", None),
                  ("POST", "/api/views/kyoto", None), ("POST", "/api/views/lisbon", None),
                  ("POST", "/api/views/kyoto", None),
                  ("PUT", "/api/wizard/where", {"destination": "kyoto"}),
                  ("PUT", "/api/wizard/when", {"month": 5, "flexible": True}),
                  ("PUT", "/api/draft", {"text": "pack light"})]
        for method, path, body in writes:
            reply = on(await ann.call(method, path, body), "legacy", f"{method} {path} on Django")
            assert reply.upstream == node, f"{path}: the session moved to {reply.upstream}"
        model: dict[str, Any] = {
            "user": user, "prefs": {"theme": "dark", "currency": "eur"},
            "saved": ["kyoto", "lisbon"], "views": {"kyoto": 2, "lisbon": 1},
            "recent": ["kyoto", "lisbon"],
            "wizard": {"where": {"destination": "kyoto"}, "when": {"month": 5, "flexible": True}},
            "draft": "pack light"}
        state = on(await ann.call("GET", "/api/state"), "legacy", "state on Django")
        assert state.body == state_of(model)
        django_keys = undeclared(await export(trips, node, sid))
        assert {"_auth_user_id", "_auth_user_backend", "_auth_user_hash"} <= set(django_keys), \
            django_keys
        assert django_keys["_auth_user_id"] == user["id"]

        # the operator moves the session routes to new
        await move(admin, SESSION_ROUTES, "new")
        me = on(await ann.call("GET", "/api/me"), "new", "/api/me on new")
        assert me.body == {"user": user}
        state = on(await ann.call("GET", "/api/state"), "new", "state on new")
        assert state.body == state_of(model), "new sees another state than Django wrote"

        # writes on new
        for method, path, body in [("PUT", "/api/prefs/units", {"value": "metric"}),
                                   ("DELETE", "/api/prefs/currency", None),
                                   ("PUT", "/api/saved/tromso", None),
                                   ("DELETE", "/api/saved/lisbon", None),
                                   ("POST", "/api/views/tromso", None),
                                   ("POST", "/api/views/kyoto", None),
                                   ("PUT", "/api/wizard/who", {"adults": 2}),
                                   ("PUT", "/api/draft", {"text": "from new"})]:
            on(await ann.call(method, path, body), "new", f"{method} {path} on new")
        model.update(prefs={"theme": "dark", "units": "metric"}, saved=["kyoto", "tromso"],
                     views={"kyoto": 3, "lisbon": 1, "tromso": 1},
                     recent=["kyoto", "tromso", "lisbon"], draft="from new")
        model["wizard"]["who"] = {"adults": 2}
        state = on(await ann.call("GET", "/api/state"), "new", "state on new after its writes")
        assert state.body == state_of(model)

        # rolled back: Django sees what new wrote, on the node that holds the session
        await move(admin, SESSION_ROUTES, "legacy")
        state = on(await ann.call("GET", "/api/state"), "legacy", "state on Django after rollback")
        assert state.body == state_of(model), "Django does not see new's writes"
        assert state.upstream == node, f"the session moved to {state.upstream}"
        after_rollback = await export(trips, node, sid)
        assert undeclared(after_rollback) == django_keys, "new's writes changed Django's keys"

        # a booking on Django from the wizard filled on both sides
        booking = await ann.call("POST", "/api/bookings", headers={"Idempotency-Key": "e2e-1"})
        expect(booking, 201, "a booking on Django from the wizard filled on both sides")
        assert booking.body["booking"]["answers"] == model["wizard"]
        assert booking.body["booking"]["destination"] == "kyoto"
        model["wizard"] = {}

        # the node holding the session dies (SIGKILL): the other one serves it, logged in
        await asyncio.to_thread(trips.legacy[node].kill)
        port = urlsplit(next(n.url for n in trips.config.legacy.nodes if n.id == node)).port
        assert port is not None
        # killpg reaches gunicorn's worker too, but the kernel may take a moment to close
        # the listening socket they share: until then a connection is taken, then reset
        await await_until(lambda: _closed(port), timeout=10, what=f"node {node}'s port closed")
        other = "b" if node == "a" else "a"
        me = on(await ann.call("GET", "/api/me"), "legacy", "/api/me once its node is dead")
        assert me.body == {"user": user} and me.upstream == other, (me.body, me.headers)
        state = on(await ann.call("GET", "/api/state"), "legacy", "state once its node is dead")
        assert state.body == state_of(model) and state.upstream == other
        listed = on(await ann.call("GET", "/api/bookings"), "legacy", "bookings on the other node")
        assert [b["id"] for b in listed.body["bookings"]] == [booking.body["booking"]["id"]]
        assert undeclared(await export(trips, other, sid)) == django_keys, \
            "the other node got other Django keys than the login made"
        pref = on(await ann.call("PUT", "/api/prefs/seat", {"value": "aisle"}), "legacy",
                  "a write on the other node")
        assert pref.upstream == other and pref.body["prefs"] == {**model["prefs"], "seat": "aisle"}


# ---------------------------------------------------------------- both sides at once

class Writes:
    """What one session was told by 200 answers, and which side told it."""

    def __init__(self) -> None:
        self.views: Counter[str] = Counter()
        self.prefs: dict[str, str] = {}
        self.saved: set[str] = set()
        self.sides: Counter[tuple[str, str | None]] = Counter()  # (field, backend)
        self.n = 0

    async def view(self, user: TripsUser, slug: str) -> None:
        reply = expect(await user.call("POST", f"/api/views/{slug}"), 200, f"view of {slug}")
        self.views[slug] += 1
        self.sides["views", reply.backend] += 1

    async def pref(self, user: TripsUser) -> None:
        self.n += 1
        key, value = f"k_{_letters(self.n)}", f"v{self.n}"
        reply = expect(await user.call("PUT", f"/api/prefs/{key}", {"value": value}), 200,
                       f"pref {key}")
        self.prefs[key] = value
        self.sides["prefs", reply.backend] += 1

    async def save(self, user: TripsUser, slug: str) -> None:
        reply = expect(await user.call("PUT", f"/api/saved/{slug}"), 200, f"save of {slug}")
        self.saved.add(slug)
        self.sides["saved", reply.backend] += 1


def _letters(n: int) -> str:
    """A pref key part (``[a-z_]``) unique to ``n``."""
    out = ""
    while True:
        n, r = divmod(n, 26)
        out = chr(ord("a") + r) + out
        if n == 0:
            return out


async def in_parallel(jobs: list[Any], width: int = 12) -> None:
    gate = asyncio.Semaphore(width)

    async def one(job: Any) -> None:
        async with gate:
            await job

    await asyncio.gather(*(one(j) for j in jobs))


async def test_concurrent_writes_on_both_sides_merge_by_the_declared_rules(
        trips: RunningStack) -> None:
    admin = Admin(trips.admin_url, trips.admin_token)
    writes = Writes()
    async with TripsUser(trips.gateway_url) as ann:
        on(await ann.login(), "legacy", "login of ann on Django through the gateway")
        sid = ann.session_id
        assert sid, "the login set no sessionid"
        django_keys = undeclared(await export(trips, (await ann.call("GET", "/api/me")).upstream
                                              or "a", sid))

        # 1. split: prefs and saved on new, views on Django, 90 writes at once; then swapped
        for on_new, on_legacy, saved in ((("prefs", "saved"), ("views",), SLUGS[:3]),
                                         (("views",), ("prefs", "saved"), SLUGS[3:6])):
            await move(admin, on_new, "new")
            await move(admin, on_legacy, "legacy")
            jobs = [writes.view(ann, SLUGS[i % 4]) for i in range(40)]
            jobs += [writes.pref(ann) for _ in range(40)]
            jobs += [writes.save(ann, s) for s in saved]
            random.shuffle(jobs)
            await in_parallel(jobs)
        for field in ("views", "prefs", "saved"):
            assert writes.sides[field, "legacy"] and writes.sides[field, "new"], writes.sides

        # 2. the three routes flip every 150 ms while 8 writers write: in-flight writes
        # on one side meet writes on the other
        flipping = asyncio.Event()
        flips = 0

        async def flipper() -> None:
            nonlocal flips
            stage = "new"
            while not flipping.is_set():
                await move(admin, ("views", "prefs", "saved"), stage)
                flips += 1
                stage = "legacy" if stage == "new" else "new"
                await asyncio.sleep(0.15)

        async def writer(i: int) -> None:
            rng = random.Random(i)
            for n in range(20):
                if n == 10 and i < 4:
                    await writes.save(ann, SLUGS[6 + i])
                elif rng.random() < 0.5:
                    await writes.view(ann, rng.choice(SLUGS))
                else:
                    await writes.pref(ann)

        before = dict(writes.sides)
        task = asyncio.create_task(flipper())
        try:
            await asyncio.gather(*(writer(i) for i in range(8)))
        finally:
            flipping.set()
            await task
        during = writes.sides - Counter(before)
        assert flips >= 4, f"only {flips} flips during the writes"
        assert during["views", "legacy"] and during["views", "new"], during
        assert during["prefs", "legacy"] and during["prefs", "new"], during

        # every write that was answered 200 is there, on both sides
        for stage in ("new", "legacy"):
            await move(admin, ("state",), stage)
            state = on(await ann.call("GET", "/api/state"), stage, f"state on {stage}")
            assert state.body["views"] == dict(writes.views), \
                f"on {stage}: a view counted on one side was lost"
            assert state.body["prefs"] == writes.prefs, f"on {stage}: a pref was lost"
            assert state.body["saved"] == sorted(writes.saved) == sorted(SLUGS), \
                f"on {stage}: a saved destination was lost"
            recent = state.body["recent"]
            assert len(recent) == len(set(recent)) <= 10 and set(recent) <= set(SLUGS), recent
        holder = (await ann.call("GET", "/api/state")).upstream or "a"
        assert undeclared(await export(trips, holder, sid)) == django_keys, \
            "Django's own keys changed under the merges"
        me = on(await ann.call("GET", "/api/bookings"), "legacy", "Django's auth after it all")
        assert me.body == {"bookings": []}
