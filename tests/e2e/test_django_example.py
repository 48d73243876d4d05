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
Its three plans run as a user runs them, at a tenth of their length, each against a
stack it starts (``--stack --free-ports --scale 0.1``): the cutover passes, the fault
plan breaches its gate and rolls back by itself, the drill times its rollback.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
import yaml

from gateway.settings import ConfigError
from strangler.rehearse.stack import RunningStack, prepare, start_stack
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


async def same_state(admin: Admin, user: TripsUser, writes: Writes, when: str) -> None:
    """Every write answered 200 is in the state, read on new and on Django."""
    seen = {}
    for stage in ("new", "legacy"):
        await move(admin, ("state",), stage)
        state = on(await user.call("GET", "/api/state"), stage, f"state on {stage}, {when}")
        seen[stage] = state.body
        recent = state.body["recent"]
        assert len(recent) == len(set(recent)) <= 10 and set(recent) <= set(SLUGS), recent
    told = {"views": dict(writes.views), "prefs": writes.prefs, "saved": sorted(writes.saved)}
    for stage, state in seen.items():
        lost = {f: _lost(told[f], state[f]) for f in told if state[f] != told[f]}
        assert not lost, (f"{when}: writes answered 200 missing on {stage}: {lost} "
                          f"(views on new {seen['new']['views']}, on Django "
                          f"{seen['legacy']['views']}, told {told['views']})")


def _lost(told: Any, seen: Any) -> Any:
    """What of ``told`` is not in ``seen``: (told, seen) by key, or the missing items."""
    if isinstance(told, dict):
        return {k: (v, seen.get(k)) for k, v in told.items() if seen.get(k) != v}
    return sorted(set(told) - set(seen))


async def test_concurrent_writes_on_both_sides_merge_by_the_declared_rules(
        trips: RunningStack) -> None:
    """Django gets at most one write per session key at a time (as Django itself
    requires: two of its requests changing one key, ``views`` say, each save what they
    read plus their change -- measured directly on a node, 40 concurrent views of one
    slug counted 8); the new service gets many at once. Both at the same time, then
    with the routes flipping under the writes: every write answered 200 is kept."""
    admin = Admin(trips.admin_url, trips.admin_token)
    writes = Writes()
    async with TripsUser(trips.gateway_url) as ann:
        on(await ann.login(), "legacy", "login of ann on Django through the gateway")
        sid = ann.session_id
        assert sid, "the login set no sessionid"
        holder = on(await ann.call("GET", "/api/me"), "legacy", "/api/me on Django").upstream
        assert holder in trips.legacy
        django_keys = undeclared(await export(trips, holder, sid))

        # 1. split: prefs and saved on new (40 writes, 12 at a time) while Django counts
        # 40 views (one at a time); then the other way round
        halves = [(("prefs", "saved"), ("views",), SLUGS[:3]),
                  (("views",), ("prefs", "saved"), SLUGS[3:6])]
        for on_new, on_legacy, saved in halves:
            await move(admin, on_new, "new")
            await move(admin, on_legacy, "legacy")
            views = [writes.view(ann, SLUGS[i % 4]) for i in range(40)]
            prefs = [writes.pref(ann) for _ in range(34)]
            saves = [writes.save(ann, s) for s in saved]
            if "views" in on_new:
                await asyncio.gather(in_parallel(views), one_at_a_time(prefs + saves))
            else:
                await asyncio.gather(one_at_a_time(views), in_parallel(prefs + saves))
            await same_state(admin, ann, writes, f"with {', '.join(on_new)} on new")
        for field in ("views", "prefs", "saved"):
            assert writes.sides[field, "legacy"] and writes.sides[field, "new"], writes.sides

        # 2. the three routes flip every 150 ms under three writers (one per key) until
        # 10 flips are done: a write in flight on one side meets writes on the other
        flips = 0

        async def flipper() -> None:
            nonlocal flips
            stage = "new"
            while flips < 10:
                await move(admin, ("views", "prefs", "saved"), stage)
                flips += 1
                stage = "legacy" if stage == "new" else "new"
                await asyncio.sleep(0.15)

        async def viewer() -> None:
            rng = random.Random(1)
            while flips < 10:
                await writes.view(ann, rng.choice(SLUGS))

        async def setter() -> None:
            while flips < 10:
                await writes.pref(ann)

        async def saver() -> None:  # the four slugs not saved yet, one every two flips
            for k, slug in enumerate(SLUGS[6:]):
                async def flipped(k: int = k) -> bool:
                    return flips >= 2 * k + 1

                await await_until(flipped, timeout=30, what=f"{2 * k + 1} flips")
                await writes.save(ann, slug)

        before = Counter(writes.sides)
        await asyncio.gather(flipper(), viewer(), setter(), saver())
        during = writes.sides - before
        assert during["views", "legacy"] and during["views", "new"], during
        assert during["prefs", "legacy"] and during["prefs", "new"], during
        await same_state(admin, ann, writes, "after the flips")
        assert writes.saved == set(SLUGS)

        holder = on(await ann.call("GET", "/api/me"), "legacy", "/api/me on Django").upstream
        assert holder in trips.legacy
        assert undeclared(await export(trips, holder, sid)) == django_keys, \
            "Django's own keys changed under the merges"
        listed = on(await ann.call("GET", "/api/bookings"), "legacy", "Django's auth after it all")
        assert listed.body == {"bookings": []}


async def one_at_a_time(jobs: list[Any]) -> None:
    for job in jobs:
        await job


# ---------------------------------------------------------------- its plans

PLANS = TRIPS / "plans"
NEW_ROUTES = {"destinations", *SESSION_ROUTES}


def strangler(*args: str, config: Path = TRIPS / "config.yaml"
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "strangler", "--config", str(config), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)


def rehearse(out: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """The exit status, report.json and the output's tail of one run at ``--scale 0.1``."""
    done = strangler(*args, "--stack", "--free-ports", "--scale", "0.1", "--out", str(out),
                     "--no-live")
    log = f"exit {done.returncode}\nstdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() \
        else {}
    return done.returncode, report, log


def checks(report: dict[str, Any]) -> dict[str, bool]:
    return {c["name"]: c["passed"] for c in report["integrity"]["checks"]}


ALL_PASSED = {"session_continuity": True, "state_integrity": True, "bookings_integrity": True,
              "bookings_table": True}


def served(report: dict[str, Any]) -> Counter[tuple[str, str]]:
    """Requests by (route, backend) over the whole run."""
    out: Counter[tuple[str, str]] = Counter()
    for second in report["timeline"]:
        for route, counts in second["by_route"].items():
            for backend, n in counts.items():
                out[route, backend] += n
    return out


def test_the_cutover_plan_passes_and_nothing_is_lost(tmp_path: Path) -> None:
    code, report, log = rehearse(tmp_path / "out", "rehearse", str(PLANS / "cutover.yaml"))
    assert code == 0, log
    assert report["kind"] == "rehearsal" and report["result"] == "passed", log
    assert [s["outcome"] for s in report["stages"]] == ["held"] * 3, log
    assert checks(report) == ALL_PASSED, report["integrity"]
    last = report["stages"][2]
    assert {c["route"] for c in last["changes"]} == set(SESSION_ROUTES)
    assert {g["name"] for g in last["gates"]} == {"error_rate", "p99_ms", "fallback_rate",
                                                  "session_continuity"}
    by = served(report)
    for route in ("destinations", "views", "saved", "prefs", "wizard"):  # the journeys'
        assert by[route, "new"] > 0, (route, by)
    assert by["bookings", "legacy"] > 0 and by["bookings", "new"] == 0, by
    table = next(c for c in report["integrity"]["checks"] if c["name"] == "bookings_table")
    assert "0 missing, 0 not placed by anyone" in table["detail"], table
    assert report["totals"]["requests"] > 300, report["totals"]


def test_the_fault_plan_breaches_its_gate_and_rolls_back_by_itself(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, report, log = rehearse(out, "rehearse", str(PLANS / "fault-triggers-rollback.yaml"))
    assert code == 1, log
    assert report["result"] == "failed"
    assert [s["outcome"] for s in report["stages"]] == ["held", "breached", "skipped"], log
    failed = [(g["name"], g["route"]) for g in report["stages"][1]["gates"] if not g["passed"]]
    assert failed == [("p99_ms", "views")], report["stages"][1]["gates"]
    kinds = [e["kind"] for e in report["events"]]
    assert kinds.index("fault") < kinds.index("breach") < kinds.index("rollback"), kinds
    rollback = next(e for e in report["events"] if e["kind"] == "rollback")
    for route in SESSION_ROUTES:
        assert f"{route} -> legacy" in rollback["detail"], rollback
    assert "destinations -> legacy" not in rollback["detail"]  # its stage held
    # a gate failed, but nobody lost anything on the way
    assert checks(report) == ALL_PASSED, report["integrity"]
    history = strangler("flags", "history", "views", config=out / "stack" / "config.yaml")
    assert history.returncode == 0, history.stderr
    newest = history.stdout.splitlines()[0]
    assert "views: new -> legacy" in newest and "rollback of stage 'session routes on new'" \
        in newest, newest


def test_the_rollback_drill_is_timed_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, report, log = rehearse(out, "drill", "rollback", "--plan",
                                 str(PLANS / "rollback-drill.yaml"))
    assert code == 0, log
    assert report["kind"] == "drill" and report["result"] == "passed", log
    drill = report["drill"]
    assert drill["rollback_s"] is not None and drill["rollback_s"] <= 3, drill
    assert (drill["users_logged_out"], drill["models_changed"], drill["rows_lost"],
            drill["rows_duplicated"]) == (0, 0, 0, 0), drill
    assert checks(report) == ALL_PASSED, report["integrity"]
    history = strangler("flags", "history", "--limit", "100",
                        config=out / "stack" / "config.yaml").stdout
    for route in NEW_ROUTES:
        assert f"{route}: new -> legacy" in history, history


def test_a_busy_port_names_the_way_out(tmp_path: Path) -> None:
    """``--stack`` without ``--free-ports`` wants config.yaml's ports: one taken (a demo
    still running) is refused before anything starts, naming the flag that avoids it."""
    doc = yaml.safe_load((TRIPS / "config.yaml").read_text())
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        doc["gateway"]["listen"]["port"] = port
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(doc))
        with pytest.raises(ConfigError) as caught:
            prepare(config, tmp_path / "run", False, TRIPS / "stack.yaml")
    assert f"gateway.listen (127.0.0.1:{port})" in str(caught.value)
    assert "Or add --free-ports" in str(caught.value)
