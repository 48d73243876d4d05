"""The step engine against a real HTTP app (aiohttp on loopback) that is not the shop:
templates, captures, model updates, assertions, both retry policies, HTTP and SQL checks.

The app keeps a session per cookie (a saved set, bookings in SQLite with an
Idempotency-Key), and can be told to misbehave: drop a write while answering
as if it were kept, answer 503 after (or before) doing the work, forget every
session. Each misbehaviour must be caught under the check the plan names, and
an honest lost answer must not be.
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.routing.routes import Router
from strangler.rehearse.client import AppClient
from strangler.rehearse.integrity import Capture, SqlChecks
from strangler.rehearse.plan import Plan, parse
from strangler.rehearse.stats import Recorder
from strangler.rehearse.users import Shared, VirtualUser, check_names

SAVED = "to_object(saved[].[@, `true`])"


def plan_data() -> dict[str, Any]:
    return {
        "name": "trips-like",
        "stages": [{"name": "one", "duration_s": 1}],
        "users": {"count": 1, "usernames": ["ann"], "password_env": "NO_SUCH_VAR_X",
                  "password": "pw"},
        "login": {"path": "/login",
                  "body": {"username": "{user.username}", "password": "{user.password}"},
                  "capture": {"me": "response.user.username"}, "resets": ["saved"]},
        "model": {"saved": {}, "booked": [], "me": None},
        "journeys": {
            "save": {"weight": 1, "steps": [{
                "method": "PUT", "vars": {"slug": "choice(`[\"oslo\", \"rome\", \"lima\"]`)"},
                "path": "/api/saved/{vars.slug}",
                "update": [{"set": "saved.{vars.slug}", "value": True}],
                "assert": [{"expr": SAVED, "model": "saved"}], "check": "saved_match"}]},
            "unsave": {"weight": 1, "steps": [{
                "method": "DELETE", "when": "length(keys(model.saved)) > `0`",
                "vars": {"slug": "choice(keys(model.saved))"},
                "path": "/api/saved/{vars.slug}",
                "update": [{"remove": "saved.{vars.slug}"}], "check": "saved_match"}]},
            "book": {"weight": 1, "steps": [{
                "method": "POST", "path": "/api/bookings", "body": {"n": "{user.n}"},
                "headers": {"Idempotency-Key": "rh-{run.id}-{uuid()}"},
                "on_no_answer": "resend", "key_header": "Idempotency-Key",
                "expect": [200, 201],
                "update": [{"add": "booked",
                            "from": "{id: response.booking.id, owner: user.username}"}],
                "assert": [{"expr": "booking.owner", "equals": "{model.me}"}],
                "check": "bookings"}]},
        },
        "checks": {
            "http": [{"name": "session_continuity", "path": "/api/state",
                      "expr": "user.username", "equals": "{user.username}"},
                     {"name": "saved_match", "path": "/api/state", "expr": SAVED,
                      "model": "saved"}],
            "sql": [{"name": "bookings_table", "database": "trips",
                     "before": "SELECT COALESCE(MAX(id), 0) AS last_id FROM booking",
                     "query": "SELECT id, owner FROM booking WHERE id > :last_id "
                              "AND owner IN :usernames",
                     "keys": "SELECT id FROM booking WHERE key IN :keys",
                     "expect": {"captured": "booked", "label": "booking"}}]},
        "databases": {"trips": {"url": "sqlite+aiosqlite:///unused"}},
    }


class App:
    """A tiny app with cookie sessions and a bookings table, and switchable faults."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.sessions: dict[str, dict[str, Any]] = {}
        self.drop_writes = False
        self.after_work: int | None = None  # answer this status after doing the work
        self.before_work: int | None = None  # answer this status without doing it
        self.requests: list[tuple[str, str, str | None]] = []
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE booking (id INTEGER PRIMARY KEY, owner TEXT, key TEXT)")

    def session(self, request: web.Request) -> dict[str, Any]:
        sid = request.cookies.get("sid", "")
        if sid not in self.sessions:
            raise web.HTTPUnauthorized(text='{"error": "not_logged_in"}')
        return self.sessions[sid]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/login", self.login)
        app.router.add_get("/api/state", self.state)
        app.router.add_put("/api/saved/{slug}", self.save)
        app.router.add_delete("/api/saved/{slug}", self.save)
        app.router.add_post("/api/bookings", self.book)
        return app

    async def login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("password") != "pw":
            return web.json_response({"error": "invalid_credentials"}, status=401)
        sid = secrets.token_hex(8)
        self.sessions[sid] = {"username": body["username"], "saved": set()}
        resp = web.json_response({"user": {"username": body["username"]}})
        resp.set_cookie("sid", sid)
        return resp

    async def state(self, request: web.Request) -> web.Response:
        s = self.session(request)
        if self.before_work:
            return web.json_response({"error": "down"}, status=self.before_work)
        return web.json_response({"user": {"username": s["username"]},
                                  "saved": sorted(s["saved"])})

    async def save(self, request: web.Request) -> web.Response:
        s = self.session(request)
        self.requests.append((request.method, request.path, None))
        if self.before_work:
            return web.json_response({"error": "down"}, status=self.before_work)
        slug = request.match_info["slug"]
        new = s["saved"] | {slug} if request.method == "PUT" else s["saved"] - {slug}
        if not self.drop_writes:
            s["saved"] = new
        if self.after_work:
            return web.json_response({"error": "lost"}, status=self.after_work)
        return web.json_response({"saved": sorted(new)})

    async def book(self, request: web.Request) -> web.Response:
        s = self.session(request)
        key = request.headers.get("Idempotency-Key")
        self.requests.append((request.method, request.path, key))
        if self.before_work:
            return web.json_response({"error": "down"}, status=self.before_work)
        with sqlite3.connect(self.db) as conn:
            row = conn.execute("SELECT id FROM booking WHERE key = ?", (key,)).fetchone()
            status = 200
            if row is None:
                status = 201
                row = (conn.execute("INSERT INTO booking (owner, key) VALUES (?, ?)",
                                    (s["username"], key)).lastrowid,)
        if self.after_work:
            return web.json_response({"error": "lost"}, status=self.after_work)
        return web.json_response({"booking": {"id": row[0], "owner": s["username"]}},
                                 status=status)


class Rig:
    def __init__(self, app: App, url: str, plan: Plan) -> None:
        self.app, self.plan = app, plan
        self.shared = Shared("t1", "pw", lambda: 0.0)
        self.client = AppClient(url, 5, Router(()), Recorder(), lambda: 0.0)
        self.user = VirtualUser(0, "ann", self.client, self.shared, plan)

    def found(self) -> list[tuple[str, str]]:
        return [(f.check, f.got) for f in self.shared.findings]


@pytest.fixture
async def rig(tmp_path: Path, aiohttp_server: Any) -> Any:
    app = App(tmp_path / "trips.db")
    server = await aiohttp_server(app.app())
    rig = Rig(app, str(server.make_url("")), parse(plan_data()))
    assert await rig.user.ensure_login(), "the test app refused the login"
    assert rig.user.model.doc["me"] == "ann"  # the login's capture
    yield rig
    await rig.client.close()


async def test_journeys_keep_the_model_and_the_checks_pass(rig: Rig) -> None:
    for journey in ("save", "save", "save", "unsave", "book", "book"):
        await rig.user.journey(journey)
    assert await rig.user.check()
    assert rig.found() == []
    state = rig.app.sessions[next(iter(rig.app.sessions))]
    assert set(rig.user.model.doc["saved"]) == state["saved"]
    booked = rig.user.model.doc["booked"]
    assert [b["owner"] for b in booked] == ["ann", "ann"] and booked[0]["id"] != booked[1]["id"]
    keys = [k for m, _, k in rig.app.requests if m == "POST"]
    assert len(keys) == 2 and all(k and k.startswith("rh-t1-") for k in keys)
    assert check_names(rig.plan) == ["session_continuity", "saved_match", "bookings"]


async def test_a_dropped_write_is_caught_by_the_check_the_plan_names(rig: Rig) -> None:
    rig.app.drop_writes = True
    await rig.user.journey("save")  # the answer claims it was kept
    assert rig.found() == []
    await rig.user.check()
    assert [c for c, _ in rig.found()] == ["saved_match"], rig.found()


async def test_a_lost_answer_leaves_the_change_uncertain_until_read(rig: Rig) -> None:
    rig.app.after_work = 503  # done, answer lost
    await rig.user.journey("save")
    assert rig.user.model.uncertain == {"saved"}
    rig.app.after_work = None
    rig.app.before_work = 502  # not done at all, answer lost
    await rig.user.journey("save")
    rig.app.before_work = None
    assert await rig.user.resolve()  # read back before the next journey: either is fine
    assert rig.found() == [] and not rig.user.model.uncertain
    # ... but anything no outcome explains is still a loss
    rig.app.after_work = 503
    await rig.user.journey("save")
    rig.app.after_work = None
    rig.app.sessions[next(iter(rig.app.sessions))]["saved"] = {"never-saved"}
    await rig.user.check()
    assert [c for c, _ in rig.found()] == ["saved_match"], rig.found()


async def test_an_unanswered_keyed_request_is_resent_the_same(rig: Rig) -> None:
    rig.app.after_work = 503
    await rig.user.journey("book")
    assert rig.user.pending is not None
    rig.app.after_work = None
    await rig.user.step()  # the pending request goes first, the same
    assert rig.user.pending is None and rig.found() == []
    first, second = [k for m, _, k in rig.app.requests if m == "POST"]
    assert first == second  # one key, one row: the app replayed it
    assert len(rig.user.model.doc["booked"]) == 1


async def test_a_lost_session_is_a_session_continuity_finding(rig: Rig) -> None:
    rig.app.sessions.clear()
    await rig.user.journey("save")
    assert [c for c, _ in rig.found()] == ["session_continuity"]
    assert "401" in rig.found()[0][1] and not rig.user.logged_in
    assert await rig.user.check()  # logs in again: a new session, its keys reset
    assert rig.user.model.doc["saved"] == {} and len(rig.found()) == 1


async def test_an_assertion_on_the_answer_fails_under_its_check(rig: Rig) -> None:
    rig.user.model.doc["me"] = "someone else"
    await rig.user.journey("book")
    assert [c for c, _ in rig.found()] == ["bookings"], rig.found()


async def test_the_sql_check_finds_lost_doubled_and_keyed_rows(rig: Rig, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'trips.db'}"
    with sqlite3.connect(tmp_path / "trips.db") as conn:  # a row from before the run
        conn.execute("INSERT INTO booking (owner, key) VALUES ('ann', 'old')")
    sql = SqlChecks(rig.plan.checks.sql, {"trips": url}, {"usernames": ["ann"], "run_id": "t1"})
    await sql.prepare()
    for _ in range(3):
        await rig.user.journey("book")
    rig.app.after_work = 503
    await rig.user.journey("book")  # done, never heard: its key finds it
    assert rig.user.pending is not None
    key = rig.user.pending.key()
    assert key is not None

    def captured() -> dict[str, list[Capture]]:
        return {"booked": [Capture(0, "ann", b) for b in rig.user.model.doc["booked"]]}

    entries, results = await sql.run(captured(), [key])
    assert entries[0]["passed"], entries
    assert (results[0].captured, results[0].rows, results[0].learned) == (3, 4, 1)
    lost = rig.user.model.doc["booked"][0]["id"]
    with sqlite3.connect(tmp_path / "trips.db") as conn:
        conn.execute("DELETE FROM booking WHERE id = ?", (lost,))
        conn.execute("INSERT INTO booking (owner, key) VALUES ('ann', 'nobody')")
    entries, results = await sql.run(captured(), [key])
    failures = entries[0]["failures"]
    assert not entries[0]["passed"] and (results[0].lost, results[0].duplicated) == (1, 1)
    assert any(f"booking #{lost} " in f and "missing" in f for f in failures), failures
    assert any("no user placed it" in f for f in failures), failures


async def test_a_database_that_cannot_be_read_fails_its_check_with_the_reason(
        rig: Rig, tmp_path: Path) -> None:
    sql = SqlChecks(rig.plan.checks.sql, {"trips": f"sqlite+aiosqlite:///{tmp_path}/x.db"},
                    {"usernames": ["ann"], "run_id": "t1"})
    with pytest.raises(Exception, match=r"checks.sql\[0\].before \(bookings_table\)"):
        await sql.prepare()
    entries, _ = await sql.run({}, [])
    assert not entries[0]["passed"] and "unknown bind(s) last_id" in entries[0]["detail"]


async def test_an_unanswered_read_captures_nothing_and_blocks_nothing(rig: Rig) -> None:
    data = plan_data()
    data["journeys"]["look"] = {"weight": 1, "steps": [{
        "path": "/api/state", "capture": {"me": "response.user.username"}}]}
    rig.user.plan = parse(data)
    rig.app.before_work = 503
    await rig.user.journey("look")
    assert rig.user.model.doc["me"] == "ann" and not rig.user.model.uncertain
    rig.app.before_work = None
    assert await rig.user.resolve() and rig.found() == []
